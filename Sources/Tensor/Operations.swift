import CBLAS
import Foundation

/// The arithmetic of a transformer layer on `Matrix` values, with BLAS doing the matrix products.
public enum Operations {
    /// `input · weightᵀ + bias (+ residual)`, the PyTorch `nn.Linear` convention: the weight is
    /// [out, in]. A residual connection is added in the same pass over the output.
    public static func linear(_ input: Matrix, weight: LinearWeight, bias: WeightView?, residual: Matrix? = nil) -> Matrix {
        let outFeatures = weight.outFeatures
        let inFeatures = weight.inFeatures
        precondition(input.columns == inFeatures, "linear layer input width mismatch")
        precondition(residual.map { $0.rows == input.rows && $0.columns == outFeatures } ?? true, "residual shape mismatch")
        var output = residual ?? Matrix(zeros: input.rows, outFeatures)
        input.values.withUnsafeBufferPointer { a in
            output.values.withUnsafeMutableBufferPointer { c in
                weight.multiply(a.baseAddress!, rows: input.rows, bias: bias?.base, into: c.baseAddress!,
                                accumulate: residual != nil)
            }
        }
        return output
    }

    /// Inner product of two float vectors, eight lanes and four accumulators at a time.
    @inlinable
    public static func dot(_ a: UnsafePointer<Float>, _ b: UnsafePointer<Float>, count: Int) -> Float {
        var s0 = SIMD8<Float>(), s1 = SIMD8<Float>(), s2 = SIMD8<Float>(), s3 = SIMD8<Float>()
        var i = 0
        let rawA = UnsafeRawPointer(a), rawB = UnsafeRawPointer(b)
        while i + 32 <= count {
            s0 += rawA.loadUnaligned(fromByteOffset: 4 * i, as: SIMD8<Float>.self) * rawB.loadUnaligned(fromByteOffset: 4 * i, as: SIMD8<Float>.self)
            s1 += rawA.loadUnaligned(fromByteOffset: 4 * (i + 8), as: SIMD8<Float>.self) * rawB.loadUnaligned(fromByteOffset: 4 * (i + 8), as: SIMD8<Float>.self)
            s2 += rawA.loadUnaligned(fromByteOffset: 4 * (i + 16), as: SIMD8<Float>.self) * rawB.loadUnaligned(fromByteOffset: 4 * (i + 16), as: SIMD8<Float>.self)
            s3 += rawA.loadUnaligned(fromByteOffset: 4 * (i + 24), as: SIMD8<Float>.self) * rawB.loadUnaligned(fromByteOffset: 4 * (i + 24), as: SIMD8<Float>.self)
            i += 32
        }
        var sum = ((s0 + s1) + (s2 + s3)).sum()
        while i < count {
            sum += a[i] * b[i]
            i += 1
        }
        return sum
    }

    /// Layer normalisation over each row, as `torch.nn.LayerNorm` (biased variance).
    public static func layerNorm(_ input: Matrix, gamma: WeightView, beta: WeightView, epsilon: Float) -> Matrix {
        let width = input.columns
        var output = input
        output.values.withUnsafeMutableBufferPointer { out in
            for row in 0..<input.rows {
                let x = out.baseAddress! + row * width
                var mean: Float = 0
                for i in 0..<width { mean += x[i] }
                mean /= Float(width)
                var variance: Float = 0
                for i in 0..<width {
                    let d = x[i] - mean
                    variance += d * d
                }
                variance /= Float(width)
                let inverse = 1 / (variance + epsilon).squareRoot()
                for i in 0..<width { x[i] = (x[i] - mean) * inverse * gamma.base[i] + beta.base[i] }
            }
        }
        return output
    }

    /// Element-wise sum, for residual connections.
    public static func add(_ a: Matrix, _ b: Matrix) -> Matrix {
        precondition(a.rows == b.rows && a.columns == b.columns, "residual shapes differ")
        var out = a
        for i in out.values.indices { out.values[i] += b.values[i] }
        return out
    }

    public static func apply(_ activation: Activation, to input: Matrix) -> Matrix {
        var out = input
        out.values.withUnsafeMutableBufferPointer { activation.apply(to: $0) }
        return out
    }

    /// Multi-head scaled dot-product attention for `batch` sequences of `length` tokens stored one
    /// after another. `qkv` holds the three projections side by side: [batch · length, 3 · width].
    /// With `causal`, token i only sees tokens 0...i. Returns [batch · length, width].
    public static func attention(qkv: Matrix, batch: Int, length: Int, heads: Int, causal: Bool) -> Matrix {
        let width = qkv.columns / 3
        let stride = qkv.columns
        let headSize = width / heads
        let scale = 1 / Float(headSize).squareRoot()
        var output = Matrix(zeros: qkv.rows, width)
        var scores = [Float](repeating: 0, count: length * length)
        qkv.values.withUnsafeBufferPointer { packed in
            output.values.withUnsafeMutableBufferPointer { o in
                scores.withUnsafeMutableBufferPointer { s in
                    for item in 0..<batch {
                        let rows = packed.baseAddress! + item * length * stride
                        for head in 0..<heads {
                            let q = rows + head * headSize
                            let k = q + width
                            let v = q + 2 * width
                            // scores = scale · Q_h K_hᵀ  [length, length]
                            cblas_sgemm(
                                CblasRowMajor, CblasNoTrans, CblasTrans,
                                Int32(length), Int32(length), Int32(headSize),
                                scale, q, Int32(stride), k, Int32(stride),
                                0, s.baseAddress, Int32(length))
                            softmaxRows(s.baseAddress!, rows: length, columns: length, causal: causal)
                            // out_h = P V_h  [length, headSize]
                            cblas_sgemm(
                                CblasRowMajor, CblasNoTrans, CblasNoTrans,
                                Int32(length), Int32(headSize), Int32(length),
                                1, s.baseAddress, Int32(length), v, Int32(stride),
                                0, o.baseAddress! + item * length * width + head * headSize, Int32(width))
                        }
                    }
                }
            }
        }
        return output
    }

    /// Numerically stable softmax of each row; with `causal`, entries right of the diagonal become 0.
    static func softmaxRows(_ data: UnsafeMutablePointer<Float>, rows: Int, columns: Int, causal: Bool) {
        for row in 0..<rows {
            let x = data + row * columns
            let visible = causal ? row + 1 : columns
            var maximum = -Float.infinity
            for i in 0..<visible { maximum = max(maximum, x[i]) }
            var sum: Float = 0
            for i in 0..<visible {
                x[i] = expf(x[i] - maximum)
                sum += x[i]
            }
            let inverse = 1 / sum
            for i in 0..<visible { x[i] *= inverse }
            for i in visible..<columns { x[i] = 0 }
        }
    }

    /// Scales each row to unit Euclidean length (rows of zeros stay zero).
    public static func l2Normalized(_ vector: [Float]) -> [Float] {
        var sum: Double = 0
        for x in vector { sum += Double(x) * Double(x) }
        let norm = sum.squareRoot()
        guard norm > 0 else { return vector }
        return vector.map { Float(Double($0) / norm) }
    }
}

/// Threads one matrix product may use, in the Swift kernels and in BLAS.
public enum ComputeThreads {
    nonisolated(unsafe) private static var chosen = ProcessInfo.processInfo.activeProcessorCount

    public static func set(_ count: Int) {
        chosen = max(1, count)
        openblas_set_num_threads(Int32(chosen))
    }

    public static var count: Int { chosen }
}
