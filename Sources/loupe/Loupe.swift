import ArgumentParser

@main
struct Loupe: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "loupe",
        abstract: "Local multimodal embeddings and image search with CLIP models.",
        subcommands: [Serve.self, Ingest.self, Search.self, Collections.self, Export.self, Embed.self, Models.self, Bench.self])
}

/// The model option every command that runs a model shares.
struct ModelOptions: ParsableArguments {
    @Option(name: .long, help: "A model folder in Hugging Face CLIPModel format, or a Hub id (org/name[@revision]).")
    var model = "openai/clip-vit-base-patch32"
}
