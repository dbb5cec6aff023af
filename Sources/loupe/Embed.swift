import ArgumentParser
import Embedding
import Foundation
import ImageIO
import ModelHub
import Server

extension Loupe {
    struct Embed: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Embed texts and images; one JSON object per input on stdout, in the order given.",
            discussion: """
                Each line is {"input", "kind", "model", "vector"}, or {"input", "kind", "error": {"code", "message"}} \
                for an input that failed; the others are still embedded and the exit status is then 1.
                """)

        @OptionGroup var options: ModelOptions
        @OptionGroup var remote: RemoteOptions
        @Option(name: .long, help: "A text to embed (repeatable).") var text: [String] = []
        @Option(name: .long, help: "An image file to embed (repeatable).") var image: [String] = []

        func validate() throws {
            if text.isEmpty && image.isEmpty { throw ValidationError("give at least one --text or --image") }
        }

        func run() async throws {
            let embedder = try await Embedders.open(options.model, remote: remote,
                                                    settings: .init(precision: options.precision, exactDecode: options.exactDecode))
            defer { Embedders.close(embedder) }
            let decodes = DecodeGate(slots: 1, budgetBytes: 1 << 30)
            var failed = false
            for input in Input.ordered(texts: text, images: image, arguments: CommandLine.arguments) {
                var line = EmbeddingLine(input: input.value, kind: input.kind)
                do {
                    switch input.kind {
                    case .text: line.vector = try await embedder.embed(text: input.value)
                    case .image: line.vector = try await embedder.embed(imageBytes: try ImageDecoder().readFile(at: input.value), decodes: decodes)
                    }
                    line.model = options.model
                } catch let error as ImageError {
                    line.error = (error.code, error.description)
                } catch let error as EmbeddingError {
                    line.error = (error.code, error.message)
                }
                failed = failed || line.error != nil
                StandardStreams.writeOut(line.json + "\n")
            }
            if failed { throw ExitCode(1) }
        }
    }
}

/// One command-line input, in the order it was given.
struct Input {
    enum Kind: String { case text, image }
    let kind: Kind
    let value: String

    /// ArgumentParser collects `--text` and `--image` into two arrays; their interleaving is read back
    /// from the raw arguments so that output follows input order.
    static func ordered(texts: [String], images: [String], arguments: [String]) -> [Input] {
        var order = [Kind]()
        var index = 0
        while index < arguments.count {
            let argument = arguments[index]
            if argument == "--" { break }
            for kind in [Kind.text, .image] {
                if argument == "--\(kind.rawValue)" {
                    order.append(kind)
                    index += 1  // skip its value, which may itself look like an option
                } else if argument.hasPrefix("--\(kind.rawValue)=") {
                    order.append(kind)
                }
            }
            index += 1
        }
        guard order.filter({ $0 == .text }).count == texts.count, order.filter({ $0 == .image }).count == images.count else {
            return texts.map { Input(kind: .text, value: $0) } + images.map { Input(kind: .image, value: $0) }
        }
        var nextText = texts.makeIterator()
        var nextImage = images.makeIterator()
        return order.map { kind in Input(kind: kind, value: (kind == .text ? nextText.next() : nextImage.next())!) }
    }
}

/// The JSON Lines record `loupe embed` prints.
struct EmbeddingLine {
    let input: String
    let kind: Input.Kind
    var model: String?
    var vector: [Float]?
    var error: (code: String, message: String)?

    var json: String {
        var fields = ["\"input\":\(JSONText.string(input))", "\"kind\":\"\(kind.rawValue)\""]
        if let error {
            fields.append("\"error\":{\"code\":\(JSONText.string(error.code)),\"message\":\(JSONText.string(error.message))}")
        } else if let model, let vector {
            fields.append("\"model\":\(JSONText.string(model))")
            fields.append("\"vector\":\(JSONText.vector(vector))")
        }
        return "{" + fields.joined(separator: ",") + "}"
    }
}
