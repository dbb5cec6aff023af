import Foundation
import HubFixture

// Serves the test Hub with openai/clip-vit-base-patch32 laid out as on huggingface.co (PyTorch weights in
// main, safetensors in the conversion bot's pull request), for scripts/check-start.sh. Prints the Hub's
// address on the first line of its output and runs until it is stopped.
let fixtures = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent().appendingPathComponent("Fixtures")
let hub = FakeHub(repositories: ["openai/clip-vit-base-patch32": try .openAICLIP(fixtures: fixtures)])
try await hub.run { endpoint in
    FileHandle.standardOutput.write(Data((endpoint + "\n").utf8))
    while true { try await Task.sleep(for: .seconds(3600)) }
}
