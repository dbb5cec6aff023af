import Foundation
import Testing

#if arch(x86_64)
import KernelsAVX2
import KernelsAVX512
#endif

import CAllocator
@testable import Tensor

@Suite struct OperationsTests {
    static func random(_ count: Int, seed: UInt64) -> [Float] {
        var state = seed
        return (0..<count).map { _ in
            state = state &* 6364136223846793005 &+ 1442695040888963407
            return Float(Int64(bitPattern: state >> 11) % 2000) / 1000 - 1
        }
    }

    /// Every float32 product kernel this processor runs computes `input · weightᵀ + bias (+ residual)`, for row
    /// counts around the kernels' tile heights and thread splits, widths that leave partial panels and
    /// partial depth blocks, and a weight made of stacked parts (q, k and v). Checked against a float64
    /// product: the float32 sum of up to 1,000 terms of size ≤ 1 stays well within 2e-4.
    @Test(arguments: [1, 5, 6, 7, 9, 10, 11, 50, 129, 200])
    func linearMatchesAReferenceProduct(_ rows: Int) {
        let inFeatures = 1000, parts = [50, 83]  // 133 outputs: 4 full panels of 32 and a partial one
        let outFeatures = parts.reduce(0, +)
        let weights = Self.random(inFeatures * outFeatures, seed: 1)
        let bias = Self.random(outFeatures, seed: 2)
        let input = Matrix(rows: rows, columns: inFeatures, values: Self.random(rows * inFeatures, seed: 3))
        let residual = Matrix(rows: rows, columns: outFeatures, values: Self.random(rows * outFeatures, seed: 5))
        let kernels = ProductKernel.allCases.filter { $0.isSupported && $0.isFloat32 }
        #expect(kernels.contains(.blas))
        weights.withUnsafeBufferPointer { w in
            bias.withUnsafeBufferPointer { b in
                let views = [
                    WeightView(base: w.baseAddress!, shape: [parts[0], inFeatures]),
                    WeightView(base: w.baseAddress! + parts[0] * inFeatures, shape: [parts[1], inFeatures]),
                ]
                let biasView = WeightView(base: b.baseAddress!, shape: [outFeatures])
                for kernel in kernels {
                    let weight = LinearWeight(parts: views, kernel: kernel)
                    let plain = Operations.linear(input, weight: weight, bias: biasView)
                    let withResidual = Operations.linear(input, weight: weight, bias: biasView, residual: residual)
                    let noBias = Operations.linear(input, weight: weight, bias: nil)
                    var worst = 0.0
                    for r in 0..<rows {
                        for j in 0..<outFeatures {
                            var product = 0.0
                            for k in 0..<inFeatures { product += Double(input[r, k]) * Double(weights[j * inFeatures + k]) }
                            worst = max(
                                worst, abs(Double(plain[r, j]) - product - Double(bias[j])),
                                abs(Double(withResidual[r, j]) - product - Double(bias[j]) - Double(residual[r, j])),
                                abs(Double(noBias[r, j]) - product))
                        }
                    }
                    #expect(worst < 2e-4, "\(kernel): largest error \(worst)")
                }
            }
        }
    }

    /// The 8-bit kernel: each output within 2 % of the largest output magnitude of a float64 product (the
    /// rounding of 1,000 weights and inputs to 8 bits), over the same shapes, residual and bias.
    @Test(.enabled(if: ProductKernel.int8.isSupported), arguments: [1, 5, 7, 10, 11, 129, 200])
    func int8ProductStaysCloseToTheReference(_ rows: Int) {
        let inFeatures = 999, outFeatures = 133  // a partial group of four inputs and a partial panel
        let weights = Self.random(inFeatures * outFeatures, seed: 7)
        let bias = Self.random(outFeatures, seed: 8)
        // Skewed inputs, as after an activation, so that the zero point matters.
        let input = Matrix(rows: rows, columns: inFeatures, values: Self.random(rows * inFeatures, seed: 9).map { $0 * 2 + 0.7 })
        let residual = Matrix(rows: rows, columns: outFeatures, values: Self.random(rows * outFeatures, seed: 10))
        weights.withUnsafeBufferPointer { w in
            bias.withUnsafeBufferPointer { b in
                let weight = LinearWeight(WeightView(base: w.baseAddress!, shape: [outFeatures, inFeatures]), kernel: .int8)
                let out = Operations.linear(input, weight: weight, bias: WeightView(base: b.baseAddress!, shape: [outFeatures]),
                                            residual: residual)
                var worst = 0.0, largest = 0.0
                for r in 0..<rows {
                    for j in 0..<outFeatures {
                        var expected = Double(bias[j]) + Double(residual[r, j])
                        for k in 0..<inFeatures { expected += Double(input[r, k]) * Double(weights[j * inFeatures + k]) }
                        worst = max(worst, abs(Double(out[r, j]) - expected))
                        largest = max(largest, abs(expected))
                    }
                }
                #expect(worst <= 0.02 * largest, "largest error \(worst) against outputs up to \(largest)")
                #expect(worst > 0, "8-bit rounding must show")
            }
        }
    }

    /// Packed kernels own their copy of the weight (the loader may then release the source); BLAS
    /// reads a single-part weight where it lies.
    @Test func packedWeightsOwnTheirValues() {
        let values = Self.random(64 * 48, seed: 6)
        values.withUnsafeBufferPointer { w in
            let view = WeightView(base: w.baseAddress!, shape: [64, 48])
            for kernel in ProductKernel.allCases.filter(\.isSupported) {
                #expect(LinearWeight(view, kernel: kernel).ownsValues == (kernel != .blas))
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

    /// quick_gelu as built for each instruction set the processor runs (and the portable build), over a
    /// length that leaves a part-filled last vector.
    @Test func quickGELUIsTheSameOnEveryInstructionSet() {
        Self.expectEveryBuild(portable: VectorMath.quickGELU, avx512: KernelsAVX512.ElementWise.quickGELU,
                              avx2: KernelsAVX2.ElementWise.quickGELU) { x in x / (1 + Foundation.exp(-1.702 * x)) }
    }

    /// gelu_pytorch_tanh (SigLIP's), computed as x · sigmoid(2u), against the tanh definition.
    @Test func geluTanhIsTheSameOnEveryInstructionSet() {
        Self.expectEveryBuild(portable: VectorMath.geluTanh, avx512: KernelsAVX512.ElementWise.geluTanh,
                              avx2: KernelsAVX2.ElementWise.geluTanh) { x in
            0.5 * x * (1 + tanh(0.7978845608028654 * (x + 0.044715 * x * x * x)))
        }
    }

    /// An activation as built for each instruction set the processor runs (and the portable build), over a
    /// length that leaves a part-filled last vector, within 2e-6 of its float64 definition.
    static func expectEveryBuild(portable: @escaping (UnsafeMutablePointer<Float>, Int) -> Void,
                                 avx512: @escaping (UnsafeMutablePointer<Float>, Int) -> Void,
                                 avx2: @escaping (UnsafeMutablePointer<Float>, Int) -> Void,
                                 definition: (Double) -> Double) {
        let values = Self.random(1_003, seed: 13).map { $0 * 8 }
        var builds: [(String, (UnsafeMutablePointer<Float>, Int) -> Void)] = [("portable", portable)]
        #if arch(x86_64)
        if ProductKernel.avx512.isSupported { builds.append(("avx512", avx512)) }
        if ProductKernel.avx2.isSupported { builds.append(("avx2", avx2)) }
        #endif
        for (name, activation) in builds {
            var out = values
            out.withUnsafeMutableBufferPointer { activation($0.baseAddress!, $0.count) }
            let worst = zip(values, out).map { abs(Double($1) - definition(Double($0))) }.max() ?? 1
            #expect(worst < 2e-6, "\(name): largest error \(worst)")
        }
    }

    /// The search distances as built for each instruction set (and the portable build) against float64
    /// sums, at lengths that leave part-filled vectors: float32 rows, rows gathered by id with a stride,
    /// float16 and int8 rows.
    @Test(arguments: [1, 7, 33, 512, 1_027])
    func distancesAreTheSameOnEveryInstructionSet(_ length: Int) {
        typealias Builds = (dot: (UnsafePointer<Float>, UnsafePointer<Float>, Int) -> Float,
                            gathered: (UnsafePointer<Float>, UnsafePointer<Float>, Int, Int, UnsafePointer<Int32>, Int, UnsafeMutablePointer<Float>) -> Void,
                            half: (UnsafePointer<Float>, UnsafePointer<Float16>, Int) -> Float,
                            byte: (UnsafePointer<Float>, UnsafePointer<Int8>, Int) -> Float)
        var builds: [(String, Builds)] = [("portable", (
            { VectorDistances.dot($0, $1, count: $2) }, { VectorDistances.dots($0, $1, stride: $2, dimension: $3, ids: $4, count: $5, into: $6) },
            { VectorDistances.dot($0, $1, count: $2) }, { VectorDistances.dot($0, $1, count: $2) }))]
        #if arch(x86_64)
        if ProductKernel.avx512.isSupported {
            builds.append(("avx512", (
                { KernelsAVX512.Distances.dot($0, $1, count: $2) },
                { KernelsAVX512.Distances.dots($0, $1, stride: $2, dimension: $3, ids: $4, count: $5, into: $6) },
                { KernelsAVX512.Distances.dot($0, $1, count: $2) }, { KernelsAVX512.Distances.dot($0, $1, count: $2) })))
        }
        if ProductKernel.avx2.isSupported {
            builds.append(("avx2", (
                { KernelsAVX2.Distances.dot($0, $1, count: $2) },
                { KernelsAVX2.Distances.dots($0, $1, stride: $2, dimension: $3, ids: $4, count: $5, into: $6) },
                { KernelsAVX2.Distances.dot($0, $1, count: $2) }, { KernelsAVX2.Distances.dot($0, $1, count: $2) })))
        }
        #endif
        let query = Self.random(length, seed: 21)
        let stride = length + 3
        let rows = Self.random(5 * stride, seed: 22)
        let ids: [Int32] = [4, 0, 2, 2, 1]  // four scored together, one alone
        let halves = rows.prefix(length).map { Float16($0) }
        let bytes = rows.prefix(length).map { Int8(($0 * 127).rounded()) }
        func reference(_ row: [Double]) -> Double { zip(query, row).reduce(0) { $0 + Double($1.0) * $1.1 } }
        for (name, build) in builds {
            let tolerance = 1e-5 * Double(length).squareRoot() + 1e-6
            let plain = build.dot(query, rows, length)
            #expect(abs(Double(plain) - reference(rows.prefix(length).map(Double.init))) <= tolerance, "\(name) float32")
            var out = [Float](repeating: .nan, count: ids.count)
            out.withUnsafeMutableBufferPointer { build.gathered(query, rows, stride, length, ids, ids.count, $0.baseAddress!) }
            for (id, value) in zip(ids, out) {
                let row = rows[(Int(id) * stride)..<(Int(id) * stride + length)].map(Double.init)
                #expect(abs(Double(value) - reference(row)) <= tolerance, "\(name) gathered row \(id)")
            }
            #expect(abs(Double(build.half(query, halves, length)) - reference(halves.map(Double.init))) <= tolerance, "\(name) float16")
            #expect(abs(Double(build.byte(query, bytes, length)) - reference(bytes.map(Double.init))) <= 1e-4 * Double(length), "\(name) int8")
        }
    }

    /// Softmax as built for each instruction set (and the portable build) against a float64 softmax,
    /// at the sequence lengths of CLIP's towers (50 and 77: part-filled last vectors), causal or not.
    @Test(arguments: [50, 77], [false, true])
    func softmaxIsTheSameOnEveryInstructionSet(_ length: Int, _ causal: Bool) {
        let scores = Self.random(length * length, seed: 14).map { $0 * 12 }
        var builds: [(String, (UnsafeMutablePointer<Float>) -> Void)] = [
            ("portable", { VectorMath.softmaxRows($0, rows: length, columns: length, causal: causal) }),
        ]
        #if arch(x86_64)
        if ProductKernel.avx512.isSupported {
            builds.append(("avx512", { KernelsAVX512.ElementWise.softmaxRows($0, rows: length, columns: length, causal: causal) }))
        }
        if ProductKernel.avx2.isSupported {
            builds.append(("avx2", { KernelsAVX2.ElementWise.softmaxRows($0, rows: length, columns: length, causal: causal) }))
        }
        #endif
        for (name, softmax) in builds {
            var out = scores
            out.withUnsafeMutableBufferPointer { softmax($0.baseAddress!) }
            var worst = 0.0
            for row in 0..<length {
                let visible = causal ? row + 1 : length
                let values = (0..<visible).map { Double(scores[row * length + $0]) }
                let largest = values.max() ?? 0
                let total = values.reduce(0) { $0 + Foundation.exp($1 - largest) }
                for column in 0..<length {
                    let expected = column < visible ? Foundation.exp(values[column] - largest) / total : 0
                    worst = max(worst, abs(Double(out[row * length + column]) - expected))
                }
            }
            #expect(worst < 1e-6, "\(name): largest error \(worst)")
        }
    }

    /// Attention against a float64 computation of its definition, over every token and over one query
    /// token per sequence (which the towers use in their last layer), causal and not.
    @Test(arguments: [false, true])
    func attentionMatchesItsDefinition(_ causal: Bool) {
        let batch = 3, length = 7, heads = 2, headSize = 4, width = heads * headSize
        let qkv = Matrix(rows: batch * length, columns: 3 * width, values: Self.random(batch * length * 3 * width, seed: 7).map { $0 * 3 })
        func expected(item: Int, position: Int, column: Int) -> Double {
            let head = column / headSize
            let visible = causal ? position + 1 : length
            let query = item * length + position
            let scores = (0..<visible).map { key in
                (0..<headSize).reduce(0.0) { sum, i in
                    sum + Double(qkv[query, head * headSize + i]) * Double(qkv[item * length + key, width + head * headSize + i])
                } / Double(headSize).squareRoot()
            }
            let largest = scores.max()!
            let weights = scores.map { exp($0 - largest) }
            let total = weights.reduce(0, +)
            return (0..<visible).reduce(0.0) { $0 + weights[$1] / total * Double(qkv[item * length + $1, 2 * width + column]) }
        }
        let all = Operations.attention(qkv: qkv, batch: batch, length: length, heads: heads, causal: causal)
        let positions = [6, 0, 3]
        let chosen = Operations.attention(qkv: qkv, batch: batch, length: length, heads: heads, causal: causal, queries: positions)
        #expect(all.rows == batch * length && chosen.rows == batch && chosen.columns == width)
        var worst = 0.0
        for item in 0..<batch {
            for column in 0..<width {
                for position in 0..<length {
                    worst = max(worst, abs(Double(all[item * length + position, column]) - expected(item: item, position: position, column: column)))
                }
                worst = max(worst, abs(Double(chosen[item, column]) - expected(item: item, position: positions[item], column: column)))
            }
        }
        #expect(worst < 1e-5, "largest error \(worst)")
    }

    /// Weight memory starts on a 2 MB boundary, holds every byte asked for (sizes around page
    /// boundaries, and none), and refuses a size it cannot map instead of wrapping around.
    @Test(arguments: [0, 1, 4095, 4096, 4097, 2 << 20, (5 << 20) + 3])
    func weightMemoryIsAlignedAndWholeForEverySize(_ bytes: Int) throws {
        let start = try #require(loupe_allocate_weights(bytes))
        defer { loupe_free_weights(start, bytes) }
        #expect(Int(bitPattern: start) % (2 << 20) == 0)
        let values = start.bindMemory(to: UInt8.self, capacity: max(bytes, 1))
        for i in 0..<bytes { values[i] = UInt8(truncatingIfNeeded: i) }
        #expect((0..<bytes).allSatisfy { values[$0] == UInt8(truncatingIfNeeded: $0) })
    }

    @Test func weightMemoryRefusesImpossibleSizes() {
        #expect(loupe_allocate_weights(Int.max) == nil)
        #expect(loupe_allocate_weights(Int(bitPattern: UInt(UInt.max) - 4096)) == nil)
    }

    /// The memory probe reads every value once: its sum equals the sum of what it was filled with
    /// (small integers, so the float sum is exact), for sizes that leave partial vectors and threads.
    @Test(arguments: [0, 4, 4100, 1_000_004])
    func memoryProbeReadsEveryValue(_ bytes: Int) throws {
        let probe = try #require(MemoryProbe(byteCount: bytes))
        let count = max(1, bytes / 4)
        #expect(probe.byteCount == count * 4)
        #expect(probe.readAll() == Float((0..<count).reduce(0) { $0 + $1 % 7 }))
    }

    @Test func causalSoftmaxHidesTheFuture() {
        var scores: [Float] = [1, 2, 3, 4, 5, 6, 7, 8, 9]
        scores.withUnsafeMutableBufferPointer { Operations.softmaxRows($0.baseAddress!, rows: 3, columns: 3, causal: true) }
        #expect(scores[0] == 1 && scores[1] == 0 && scores[2] == 0)
        #expect(abs(scores[3] + scores[4] - 1) < 1e-6 && scores[5] == 0)
        #expect(abs(scores[6...].reduce(0, +) - 1) < 1e-6)
    }
}
