import Foundation
import Testing

@testable import Tensor

@Suite struct OperationsTests {
    static func random(_ count: Int, seed: UInt64) -> [Float] {
        var state = seed
        return (0..<count).map { _ in
            state = state &* 6364136223846793005 &+ 1442695040888963407
            return Float(Int64(bitPattern: state >> 11) % 2000) / 1000 - 1
        }
    }

    /// The few-rows path and the BLAS path compute the same product.
    @Test(arguments: [1, 5, 8, 9, 40])
    func linearAgreesAcrossPaths(_ rows: Int) {
        let inFeatures = 77, outFeatures = 130
        let weights = Self.random(inFeatures * outFeatures, seed: 1)
        let bias = Self.random(outFeatures, seed: 2)
        let input = Matrix(rows: rows, columns: inFeatures, values: Self.random(rows * inFeatures, seed: 3))
        weights.withUnsafeBufferPointer { w in
            bias.withUnsafeBufferPointer { b in
                let weight = WeightView(base: w.baseAddress!, shape: [outFeatures, inFeatures])
                let biasView = WeightView(base: b.baseAddress!, shape: [outFeatures])
                let out = Operations.linear(input, weight: weight, bias: biasView)
                for r in 0..<rows {
                    for j in 0..<outFeatures {
                        var expected = Double(bias[j])
                        for k in 0..<inFeatures { expected += Double(input[r, k]) * Double(weights[j * inFeatures + k]) }
                        #expect(abs(Double(out[r, j]) - expected) < 1e-4, "row \(r) column \(j)")
                    }
                }
            }
        }
    }

    @Test func vectorExpMatchesLibm() {
        var worst: Float = 0
        for i in stride(from: -8700, to: 8800, by: 7) {
            let x = Float(i) / 100
            let lanes = SIMD8<Float>(repeating: x)
            let relative = abs(VectorMath.exp(lanes)[0] - expf(x)) / expf(x)
            worst = max(worst, relative)
        }
        #expect(worst < 4e-7)
    }

    @Test func activationsMatchTheirDefinitions() {
        let values = Self.random(300_000, seed: 4).map { $0 * 6 }
        for activation in Activation.allCases {
            let out = Operations.apply(activation, to: Matrix(rows: 1, columns: values.count, values: values))
            for (x, y) in zip(values, out.values).prefix(5000) {
                let expected: Double
                switch activation {
                case .quickGELU: expected = Double(x) / (1 + Foundation.exp(-1.702 * Double(x)))
                case .gelu: expected = 0.5 * Double(x) * (1 + Foundation.erf(Double(x) / 2.0.squareRoot()))
                case .geluTanh: expected = 0.5 * Double(x) * (1 + tanh(0.7978845608028654 * (Double(x) + 0.044715 * pow(Double(x), 3))))
                case .relu: expected = max(Double(x), 0)
                }
                #expect(abs(Double(y) - expected) < 2e-6, "\(activation) at \(x)")
            }
        }
    }

    @Test func causalSoftmaxHidesTheFuture() {
        var scores: [Float] = [1, 2, 3, 4, 5, 6, 7, 8, 9]
        scores.withUnsafeMutableBufferPointer { Operations.softmaxRows($0.baseAddress!, rows: 3, columns: 3, causal: true) }
        #expect(scores[0] == 1 && scores[1] == 0 && scores[2] == 0)
        #expect(abs(scores[3] + scores[4] - 1) < 1e-6 && scores[5] == 0)
        #expect(abs(scores[6...].reduce(0, +) - 1) < 1e-6)
    }
}
