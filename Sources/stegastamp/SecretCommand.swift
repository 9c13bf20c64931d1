import ArgumentParser
import StegaStamp

struct SecretCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "secret", abstract: "The 100-bit payload: 7 bytes of text with BCH error correction (as the original).",
        subcommands: [Encode.self, Decode.self])

    struct Encode: ParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Print the 100 bits of TEXT (at most 7 bytes of UTF-8) as 0/1.")
        @Argument(help: "The text.") var text: String

        func run() throws {
            do { print(try SecretCodec.standard.encode(text).map(String.init).joined()) } catch { throw CLIError("\(error)") }
        }
    }

    struct Decode: ParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Correct and decode BITS (a string of 0/1, spaces allowed): the text and the number of corrected bits.")
        @Argument(parsing: .remaining, help: "The bits.") var bits: [String]

        func run() throws {
            let text = bits.joined()
            guard text.allSatisfy({ $0 == "0" || $0 == "1" || $0 == " " }) else { throw CLIError("BITS must contain only 0, 1 and spaces") }
            let values = text.compactMap { $0 == "0" ? UInt8(0) : ($0 == "1" ? UInt8(1) : nil) }
            do {
                let d = try SecretCodec.standard.decode(values)
                print(d.text)
                print("corrected bits: \(d.corrected)")
            } catch {
                throw CLIError("\(error)")
            }
        }
    }
}
