// Open MPI (Debian: libopenmpi-dev). Its handles are macros over global objects, which Swift
// cannot import: these inline functions hand them over.
#include <mpi.h>

static inline MPI_Comm stegastamp_mpi_world(void) { return MPI_COMM_WORLD; }
static inline MPI_Datatype stegastamp_mpi_float(void) { return MPI_FLOAT; }
static inline MPI_Op stegastamp_mpi_sum(void) { return MPI_SUM; }
static inline void *stegastamp_mpi_in_place(void) { return MPI_IN_PLACE; }
static inline int stegastamp_mpi_thread_multiple(void) { return MPI_THREAD_MULTIPLE; }
