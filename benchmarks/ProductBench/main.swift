// The matrix products of ViT-B/32 and SigLIP base alone, every kernel this processor runs, in turn (GFLOP/s).
//
//   product-bench [THREADS] [ROUNDS] [COPIES]
//
// Each shape is timed for every kernel in the same round, rounds alternate, and the table shows each
// kernel's median over the rounds: on a shared machine, kernels timed minutes apart are not comparable.
// With COPIES > 1 each shape's weight is made that many times and the copies are used in turn, so that
// (with 12 or more) the weights come from memory, as in a forward pass, instead of from the L3 cache.
import CBLAS
import Foundation
import Tensor

let arguments = CommandLine.arguments
let threads = max(1, arguments.count > 1 ? Int(arguments[1]) ?? 2 : 2)
let rounds = max(1, arguments.count > 2 ? Int(arguments[2]) ?? 5 : 5)
let copies = max(1, arguments.count > 3 ? Int(arguments[3]) ?? 1 : 1)
ComputeThreads.set(threads)

/// rows × in → out: one image (50 rows), a 77-token text, a short text, and a batch of 32 images of
/// ViT-B/32; one image and a text of SigLIP base.
let shapes: [(rows: Int, inFeatures: Int, outFeatures: Int, name: String)] = [
    (1600, 768, 2304, "qkv, batch 32"), (1600, 768, 3072, "fc1, batch 32"), (1600, 3072, 768, "fc2, batch 32"),
    (50, 768, 2304, "qkv, one image"), (50, 768, 3072, "fc1, one image"), (50, 3072, 768, "fc2, one image"),
    (77, 512, 2048, "fc1, 77-token text"), (5, 512, 2048, "fc1, short text"), (5, 2048, 512, "fc2, short text"),
    // SigLIP base patch16: one image (196 patches) and a text (always 64 positions), width 768.
    (196, 768, 2304, "qkv, SigLIP one image"), (196, 768, 3072, "fc1, SigLIP one image"), (196, 3072, 768, "fc2, SigLIP one image"),
    (64, 768, 2304, "qkv, SigLIP text"), (64, 768, 3072, "fc1, SigLIP text"), (64, 3072, 768, "fc2, SigLIP text"),
]
let kernels = ProductKernel.allCases.filter { $0.isSupported && $0.isFloat32 }

func randomValues(_ count: Int) -> [Float] { (0..<count).map { _ in Float.random(in: -1...1) } }

func seconds(_ body: () -> Void) -> Double {
    let start = DispatchTime.now().uptimeNanoseconds
    body()
    return Double(DispatchTime.now().uptimeNanoseconds - start) / 1e9
}

var results = [String: [Double]]()  // "shape/kernel" → GFLOP/s per round
for _ in 0..<rounds {
    for shape in shapes {
        // Weights in buffers of their own: a BLAS `LinearWeight` reads them in place for as long as it lives.
        let weightValues = (0..<copies).map { _ in
            UnsafeMutableBufferPointer<Float>.allocate(capacity: shape.outFeatures * shape.inFeatures)
        }
        defer { weightValues.forEach { $0.deallocate() } }
        for buffer in weightValues { _ = buffer.initialize(from: randomValues(buffer.count)) }
        let input = Matrix(rows: shape.rows, columns: shape.inFeatures, values: randomValues(shape.rows * shape.inFeatures))
        let flops = 2.0 * Double(shape.rows * shape.inFeatures * shape.outFeatures)
        for kernel in kernels {
            let weights = weightValues.map {
                LinearWeight(WeightView(base: $0.baseAddress!, shape: [shape.outFeatures, shape.inFeatures]), kernel: kernel)
            }
            // The engine keeps OpenBLAS to one thread beside the Swift kernels; timed alone, it gets all.
            openblas_set_num_threads(Int32(kernel == .blas ? threads : 1))
            _ = Operations.linear(input, weight: weights[0], bias: nil)
            // Enough repetitions for ~0.2 s, so one slow moment does not decide a figure.
            let repetitions = max(3, Int(0.2 * 100e9 / flops))
            let elapsed = seconds {
                for repetition in 0..<repetitions { _ = Operations.linear(input, weight: weights[repetition % copies], bias: nil) }
            }
            results["\(shape.name)/\(kernel.rawValue)", default: []].append(flops * Double(repetitions) / elapsed / 1e9)
        }
    }
}

func median(_ values: [Double]) -> Double { values.sorted()[values.count / 2] }
print("| rows × in × out | " + kernels.map(\.rawValue).joined(separator: " | ") + " |")
print("|---|" + kernels.map { _ in "---|" }.joined())
for shape in shapes {
    let cells = kernels.map { String(format: "%.0f", median(results["\(shape.name)/\($0.rawValue)"] ?? [0])) }
    print("| \(shape.rows) × \(shape.inFeatures) × \(shape.outFeatures) (\(shape.name)) | " + cells.joined(separator: " | ") + " |")
}
