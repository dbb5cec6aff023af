import CLIP
import Foundation
import HTTPBodies
import ImageIO
import ItemSources

// Coverage-guided fuzzing of Loupe's input readers with libFuzzer: `scripts/fuzz.sh` builds this with
// the address sanitizer and coverage instrumentation and links libFuzzer's driver. Each target feeds the
// bytes to a reader and checks what must hold whatever the input; a broken check, a crash or a sanitizer
// report stops the run with the input saved.
//
//     loupe-fuzz TARGET [libFuzzer options] [corpus folders]      TARGET: image, tokenizer, manifest, body, vectors

/// libFuzzer's entry point for programs that have their own `main`.
@_silgen_name("LLVMFuzzerRunDriver")
func runFuzzerDriver(
    _ argc: UnsafeMutablePointer<Int32>,
    _ argv: UnsafeMutablePointer<UnsafeMutablePointer<UnsafeMutablePointer<CChar>?>?>,
    _ callback: @convention(c) (UnsafePointer<UInt8>?, Int) -> Int32
) -> Int32

/// A property that must hold for every input; a failure is a finding, so it ends the process as a crash.
func check(_ condition: Bool, _ message: @autoclosure () -> String) {
    if !condition {
        FileHandle.standardError.write(Data("invariant broken: \(message())\n".utf8))
        abort()
    }
}

enum Targets {
    /// Every decoder on any bytes: either a clear error or an image whose size the header announced.
    /// The side limit keeps each decode under libFuzzer's memory limit.
    static let decoder = ImageDecoder(limits: ImageLimits(maximumSide: 2_048))
    static func image(_ bytes: [UInt8]) {
        let announced = try? decoder.dimensions(of: bytes)
        guard let image = try? decoder.decode(bytes) else { return }
        check(announced != nil, "an image decoded whose header size could not be read")
        if let size = announced {
            check((image.width, image.height) == (size.width, size.height) || (image.width, image.height) == (size.height, size.width),
                  "decoded \(image.width)×\(image.height), header said \(size.width)×\(size.height)")
        }
        let rgb = image.rgb()
        check(rgb.pixels.count == image.width * image.height * 3, "RGB copy has the wrong size")
    }

    /// The real CLIP vocabulary on any text: start token first, end token last, never longer than the context.
    static let tokenizer: CLIPTokenizer? = {
        let root = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
        return try? CLIPTokenizer(folder: root.appendingPathComponent("Fixtures/clip-vocab"))
    }()
    /// SigLIP's tokenizers (SentencePiece with SiglipTokenizer's steps, and tokenizer.json BPE) on any text:
    /// exactly the context's 64 ids, each inside the vocabulary.
    static let siglipTokenizers: [(any Tokenizer, vocabulary: Int)] = {
        let models = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent().appendingPathComponent("Fixtures/models")
        return [("tiny-siglip", 500), ("tiny-siglip2", 900)].compactMap { name, size in
            (try? SiglipModel.tokenizer(folder: models.appendingPathComponent(name), contextLength: 64)).map { ($0, size) }
        }
    }()
    static func tokenizer(_ bytes: [UInt8]) {
        guard let tokenizer else { return }
        let text = String(decoding: bytes, as: UTF8.self)
        if let ids = try? tokenizer.encode(text) {
            check(ids.count >= 2 && ids.count <= tokenizer.contextLength, "\(ids.count) tokens")
            check(ids.first == tokenizer.startToken && ids.last == tokenizer.endToken, "start or end token missing")
        }
        for (siglip, vocabulary) in siglipTokenizers {
            guard let ids = try? siglip.encode(text) else { continue }
            check(ids.count == 64 && ids.allSatisfy { (0..<vocabulary).contains($0) }, "SigLIP ids \(ids)")
        }
    }

    /// Manifest rows, TSV and CSV: line numbers rise, a malformed row has no fields, TSV keeps every line.
    static func manifest(_ bytes: [UInt8]) {
        let text = String(decoding: bytes, as: UTF8.self)
        for delimiter: Character in ["\t", ",", ";"] {
            let records = DelimitedText.records(text, delimiter: delimiter, maximumQuotedLength: 256)
            check(zip(records, records.dropFirst()).allSatisfy { $0.line < $1.line }, "line numbers do not rise")
            check(records.allSatisfy { $0.problem == nil || $0.fields.isEmpty }, "a malformed row kept fields")
            if delimiter == "\t" { check(records.allSatisfy { $0.problem == nil }, "TSV refused a row") }
        }
    }

    /// Vector files: a table read as `loupe import` reads it keeps only rows with 4 finite numbers and
    /// ids given once; a .npy header either is refused or describes exactly the bytes that follow.
    static func vectors(_ bytes: [UInt8]) {
        let file = URL(fileURLWithPath: "/fuzz/vectors.csv")
        if let (rows, _) = try? VectorFile.delimited(text: String(decoding: bytes, as: UTF8.self), file: file, dimension: 4) {
            check(rows.allSatisfy { $0.vector.count == 4 && $0.vector.allSatisfy(\.isFinite) }, "a loaded vector is not 4 finite numbers")
            check(Set(rows.map(\.id)).count == rows.count && rows.allSatisfy { !$0.id.isEmpty }, "an id is empty or loaded twice")
        }
        if let matrix = try? NumPyMatrix(bytes: bytes, name: "fuzz.npy") {
            check(matrix.rows >= 0 && matrix.columns >= 0, "negative shape")
            if matrix.rows > 0 { check(matrix.row(matrix.rows - 1).count == matrix.columns, "the last row is short") }
        }
    }

    /// Request bodies: the first line is a Content-Type, the rest the body, read as multipart and as JSON.
    /// The first line is also read as a Range header on a file the body's size: a range is inside it.
    static func body(_ bytes: [UInt8]) {
        let split = bytes.firstIndex(of: 10) ?? bytes.count
        let contentType = String(decoding: bytes[..<split], as: UTF8.self)
        let body = Array(bytes[min(bytes.count, split + 1)...])
        if let boundary = Multipart.boundary(contentType: contentType) {
            check(!boundary.isEmpty && boundary.count <= 200, "boundary of \(boundary.count) characters")
            let parts = Multipart.parts(body, boundary: boundary)
            check(parts.reduce(0) { $0 + $1.content.count } <= body.count, "parts hold more bytes than the body")
            if let file = Multipart.file(body, boundary: boundary) {
                check(parts.contains { $0.content == file }, "the file is not one of the parts")
            }
        }
        if case .range(let range) = ByteRangeRequest(header: contentType, size: body.count) {
            check(range.lowerBound >= 0 && range.upperBound < body.count, "range \(range) of a \(body.count)-byte file")
        }
        if let object = try? JSONBody.object(body) {
            _ = try? JSONBody.string("text", in: object)
        }
    }

    static let all: [String: @Sendable ([UInt8]) -> Void] = ["image": image, "tokenizer": tokenizer, "manifest": manifest, "body": body, "vectors": vectors]
}

nonisolated(unsafe) var selected: @Sendable ([UInt8]) -> Void = { _ in }

var arguments = CommandLine.arguments
guard arguments.count >= 2, let target = Targets.all[arguments[1]] else {
    FileHandle.standardError.write(Data("usage: loupe-fuzz \(Targets.all.keys.sorted().joined(separator: "|")) [libFuzzer options] [corpus folders]\n".utf8))
    exit(2)
}
if arguments[1] == "tokenizer" && (Targets.tokenizer == nil || Targets.siglipTokenizers.count < 2) {
    FileHandle.standardError.write(Data("the tokenizer fixtures (Tests/Fixtures/clip-vocab, models/tiny-siglip*) could not be read\n".utf8))
    exit(2)
}
selected = target
arguments.remove(at: 1)
var cArguments: [UnsafeMutablePointer<CChar>?] = arguments.map { strdup($0) } + [nil]
var count = Int32(arguments.count)
let status = cArguments.withUnsafeMutableBufferPointer { buffer in
    var base = buffer.baseAddress
    return runFuzzerDriver(&count, &base) { data, size in
        selected(size == 0 || data == nil ? [] : Array(UnsafeBufferPointer(start: data, count: size)))
        return 0
    }
}
exit(status)
