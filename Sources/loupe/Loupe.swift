import ArgumentParser
import ImageCollections

@main
struct Loupe: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "loupe",
        abstract: "Local multimodal embeddings and image search with CLIP models.",
        subcommands: [Serve.self, Ingest.self, Import.self, Search.self, Collections.self, Export.self, Embed.self, Classify.self, Models.self, Bench.self])
}

/// The model option every command that runs a model shares.
struct ModelOptions: ParsableArguments {
    @Option(name: .long, help: "A model folder in Hugging Face format (CLIPModel or SiglipModel), or a Hub id (org/name[@revision]).")
    var model = "openai/clip-vit-base-patch32"

    @Option(help: """
        float32 (the reference's arithmetic) or int8 (weights and activations rounded to 8 bits: faster, \
        vectors within cosine 0.995 of float32; needs a processor with AVX-512 VNNI).
        """)
    var precision: Precision = .float32

    @Flag(help: """
        Decode every pixel of large JPEGs, as the reference does. By default a JPEG is decoded reduced by \
        DCT scaling while its short side stays at least twice the model's input (vectors within cosine \
        0.999 of the exact decode, several times faster on photos).
        """)
    var exactDecode = false
}

enum Precision: String, ExpressibleByArgument, CaseIterable {
    case float32, int8
}

extension GroupBy: ExpressibleByArgument {}
