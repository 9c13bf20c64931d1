// Calibrates the soft decision (Sources/StegaStamp/Codec/SoftDecision.swift) on the decoder's
// logits that `stegastamp eval --logits FILE` writes. Build and run with calibrate.sh.
// For each setting: of the marked reads whose hard bits gave no believed message, how many the
// soft decision recovers and how many it gets wrong; how many hard successes the padding veto
// loses; how many unmarked photos (all views) each rule accepts; the rate on words of noise.
import Foundation

struct Record: Decodable { var photo: String; var strength: Int?; var distortion: String; var bits: [UInt8]?; var views: [[Float]] }

let codec = SecretCodec.standard
let args = CommandLine.arguments.dropFirst()
guard let path = args.first else { fatalError("usage: calibrate LOGITS.jsonl [NOISE_TRIALS]") }
let trials = args.dropFirst().first.flatMap { Int($0) } ?? 4000
let text = try String(contentsOfFile: path, encoding: .utf8)
let records = try text.split(separator: "\n").map { try JSONDecoder().decode(Record.self, from: Data($0.utf8)) }
func hard(_ l: [Float]) -> [UInt8]? { try? codec.decodeData(l.map { $0 > 0 ? 1 : 0 }).data }
let marked = records.filter { $0.bits != nil }, unmarked = records.filter { $0.bits == nil }
print("\(marked.count) marked reads, \(unmarked.count) unmarked (\(marked.first?.views.count ?? 0) views each)")
let hardFP = unmarked.filter { r in r.views.contains { hard($0) != nil } }.count
print("hard bits alone: unmarked photos accepted \(hardFP)/\(unmarked.count); marked decoded \(marked.filter { r in r.views.contains { hard($0) == Array(SecretCodec.bytes(ArraySlice(r.bits![0..<56]))) } }.count)/\(marked.count)")
let hardWrong = marked.filter { r in
    let want = Array(SecretCodec.bytes(ArraySlice(r.bits![0..<56])))
    return r.views.first { hard($0) != nil }.flatMap(hard).map { $0 != want } ?? false
}.count
print("hard bits alone: marked reads decoded to a wrong message \(hardWrong)/\(marked.count)")
let hardNoise = SoftDecision.noiseRate(codec: codec, trials: 8 * trials, seed: 3) { hard($0) != nil }
print("hard bits alone on noise words: \(hardNoise)")

func read(_ views: [[Float]], _ s: SoftDecision) -> (data: [UInt8]?, soft: Bool) {
    if let v = views.first(where: { hard($0) != nil && s.believesHard($0, codec: codec) }) { return (hard(v), false) }
    return (views.compactMap { s.decode($0, codec: codec) }.min { $0.cost < $1.cost }?.data, true)
}
var settings: [SoftDecision] = []
for pad in [Float(1), 1.5, 2] {
    for (flips, cost) in [(6, Float(3.5)), (8, 3), (8, 3.5), (8, 4)] {
        var s = SoftDecision(flips: flips, maxCost: cost); s.maxPadding = pad; settings.append(s)
    }
}
for s in settings {
    var recovered = 0, wrong = 0, lost = 0, accepted = 0
    var perStrength: [Int: (hard: Int, soft: Int, n: Int)] = [:]
    for r in marked {
        let want = Array(SecretCodec.bytes(ArraySlice(r.bits![0..<56])))
        let hardOK = r.views.contains { hard($0) == want }
        let got = read(r.views, s)
        if hardOK && got.data != want { lost += 1 }
        if !hardOK, let d = got.data {
            if d == want { recovered += 1 } else { wrong += 1; if s == .standard { print("  wrong: \(r.photo) \(r.distortion) strength index \(r.strength ?? 0)") } }
        }
        var p = perStrength[r.strength ?? 0, default: (0, 0, 0)]
        p.n += 1; if hardOK { p.hard += 1 }; if got.data == want { p.soft += 1 }
        perStrength[r.strength ?? 0] = p
    }
    for r in unmarked where read(r.views, s).data != nil { accepted += 1 }
    let wrongAll = marked.filter { r in read(r.views, s).data.map { $0 != Array(SecretCodec.bytes(ArraySlice(r.bits![0..<56]))) } ?? false }.count
    if s == .standard { print("standard setting: marked reads decoded to a wrong message \(wrongAll)/\(marked.count) (hard bits alone: \(hardWrong))") }
    let noise = SoftDecision.noiseRate(codec: codec, trials: trials, seed: 11) { read([$0], s).data != nil }
    let tally = perStrength.sorted { $0.key < $1.key }.map { "\($0.key): \($0.value.hard)->\($0.value.soft)/\($0.value.n)" }.joined(separator: " ")
    print(String(format: "flips %d cost %.1f padding %.1f: recovered %d wrong %d, hard successes lost %d, unmarked accepted %d, noise %.2g; decoded per strength index %@",
                 s.flips, s.maxCost, s.maxPadding, recovered, wrong, lost, accepted, noise, tally))
}
