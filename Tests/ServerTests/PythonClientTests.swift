import Foundation
import ImageIO
import Testing

/// Existing Azure client code, unchanged, against Loupe.
@Suite struct PythonClientTests {
    @Test func anAzureStyleRequestsClientGetsLoupesVectors() async throws {
        let model = ServerHarness.models["tiny-quickgelu"]!
        let imagePath = ServerHarness.fixtures.appendingPathComponent("images/landscape_rgb_512x384.png").path
        let text = "a painting of a blue house by the sea"
        let imageVector = model.embed(image: try ImageDecoder().decode(fileAt: imagePath).rgb())
        let textVector = try model.embed(text: text)
        let expectedCosine = zip(imageVector, textVector).reduce(0.0) { $0 + Double($1.0) * Double($1.1) }

        try await ServerHarness.withServer(configure: { $0.keys = ["azure-style-key"] }) { base, _ in
            let script = ServerHarness.root.appendingPathComponent("Tests/ServerTests/azure_client.py").path
            let output = try await Self.runPython([script, base, "azure-style-key", imagePath, text])
            let result = try #require(try JSONSerialization.jsonObject(with: Data(output.utf8)) as? [String: Any], "\(output)")
            let cosine = try #require(result["cosine"] as? Double)
            #expect(abs(cosine - expectedCosine) < 1e-5, "python \(cosine), loupe \(expectedCosine)")
            #expect(((result["image"] as? [Double]) ?? []).map(Float.init).elementsEqual(imageVector) { abs($0 - $1) < 1e-6 })
        }
    }

    static func runPython(_ arguments: [String]) async throws -> String {
        let process = Process()
        process.executableURL = URL(fileURLWithPath: "/usr/bin/env")
        process.arguments = ["python3"] + arguments
        let out = Pipe(), err = Pipe()
        process.standardOutput = out
        process.standardError = err
        try process.run()
        // Read on another thread: the server answering this client runs in this process.
        let output = await Task.detached { out.fileHandleForReading.readDataToEndOfFile() }.value
        let errors = await Task.detached { err.fileHandleForReading.readDataToEndOfFile() }.value
        process.waitUntilExit()
        if process.terminationStatus != 0 {
            Issue.record("python exited \(process.terminationStatus): \(String(decoding: errors, as: UTF8.self))")
        }
        return String(decoding: output, as: UTF8.self)
    }
}
