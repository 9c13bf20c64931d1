// Users of this module pass -Xcc -I/usr/lib/llvm-14/include (see Package.swift).
#include <llvm-c/Core.h>
#include <llvm-c/Analysis.h>
#include <llvm-c/Target.h>
#include <llvm-c/TargetMachine.h>
#include <llvm-c/LLJIT.h>
#include <llvm-c/Orc.h>
#include <llvm-c/Error.h>
#include <llvm-c/Transforms/PassBuilder.h>
