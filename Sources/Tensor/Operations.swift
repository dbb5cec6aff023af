import CAllocator
import CBLAS
import Foundation

#if arch(x86_64)
import KernelsAVX2
import KernelsAVX512
#endif

/// The arithmetic of a transformer layer on `Matrix` values, with BLAS doing the matrix products.
public enum Operations {
    /// `input · weightᵀ + bias (+ residual)`, the PyTorch `nn.Linear` convention: the weight is
    /// [out, in]. A residual connection is added in the same pass over the output.
    public static func linear(_ input: Matrix, weight: LinearWeight, bias: WeightView?, residual: Matrix? = nil) -> Matrix {
        let outFeatures = weight.outFeatures
        let inFeatures = weight.inFeatures
        precondition(input.columns == inFeatures, "linear layer input width mismatch")
        precondition(residual.map { $0.rows == input.rows && $0.columns == outFeatures } ?? true, "residual shape mismatch")
        // Every kernel writes every output value (BLAS with beta 0 or over the bias it was given).
        var output = residual ?? Matrix(uninitialized: input.rows, outFeatures)
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

    /// Layer normalisation over each row, as `torch.nn.LayerNorm` (biased variance). Rows are split
    /// across threads when there are many.
    public static func layerNorm(_ input: Matrix, gamma: WeightView, beta: WeightView, epsilon: Float) -> Matrix {
        let width = input.columns
        var output = Matrix(uninitialized: input.rows, width)
        input.values.withUnsafeBufferPointer { x in
            output.values.withUnsafeMutableBufferPointer { y in
                let addresses = (Int(bitPattern: x.baseAddress!), Int(bitPattern: y.baseAddress!))
                let rows = input.rows
                let parts = rows >= 256 ? ComputeThreads.count : 1
                ComputeThreads.parallel(parts) { part in
                    let x = UnsafePointer<Float>(bitPattern: addresses.0)!
                    let y = UnsafeMutablePointer<Float>(bitPattern: addresses.1)!
                    for row in ComputeThreads.share(part, of: parts, count: rows) {
                        normalize(x + row * width, into: y + row * width, count: width, gamma: gamma.base, beta: beta.base, epsilon: epsilon)
                    }
                }
            }
        }
        return output
    }

    /// One row: mean and variance in two passes (as PyTorch), eight lanes at a time.
    private static func normalize(
        _ x: UnsafePointer<Float>, into y: UnsafeMutablePointer<Float>, count: Int,
        gamma: UnsafePointer<Float>, beta: UnsafePointer<Float>, epsilon: Float
    ) {
        let whole = count / 8 * 8
        func lanes(_ p: UnsafePointer<Float>, _ i: Int) -> SIMD8<Float> { UnsafeRawPointer(p + i).loadUnaligned(as: SIMD8<Float>.self) }
        var sums = SIMD8<Float>()
        for i in stride(from: 0, to: whole, by: 8) { sums += lanes(x, i) }
        var total = sums.sum()
        for i in whole..<count { total += x[i] }
        let mean = total / Float(count)
        var squares = SIMD8<Float>()
        for i in stride(from: 0, to: whole, by: 8) {
            let d = lanes(x, i) - mean
            squares += d * d
        }
        var variance = squares.sum()
        for i in whole..<count { variance += (x[i] - mean) * (x[i] - mean) }
        variance /= Float(count)
        let inverse = 1 / (variance + epsilon).squareRoot()
        for i in stride(from: 0, to: whole, by: 8) {
            let value = (lanes(x, i) - mean) * inverse * lanes(gamma, i) + lanes(beta, i)
            UnsafeMutableRawPointer(y + i).storeBytes(of: value, as: SIMD8<Float>.self)
        }
        for i in whole..<count { y[i] = (x[i] - mean) * inverse * gamma[i] + beta[i] }
    }

    /// The activation of every value, in place when the caller passes a value it no longer holds (a
    /// product's output): no copy of the [rows, intermediate] matrix.
    public static func apply(_ activation: Activation, to input: consuming Matrix) -> Matrix {
        var output = consume input
        output.values.withUnsafeMutableBufferPointer { activation.apply(to: $0) }
        return output
    }

    /// Multi-head scaled dot-product attention for `batch` sequences of `length` tokens stored one
    /// after another. `qkv` holds the three projections side by side: [batch · length, 3 · width].
    /// With `causal`, token i only sees tokens 0...i. Returns [batch · length, width]; with `queries`
    /// (one position per sequence), only those tokens' outputs: [batch, width].
    public static func attention(qkv: Matrix, batch: Int, length: Int, heads: Int, causal: Bool, queries: [Int]? = nil) -> Matrix {
        precondition(queries.map { $0.count == batch && $0.allSatisfy { (0..<length).contains($0) } } ?? true,
                     "one query position per sequence, inside it")
        let width = qkv.columns / 3
        let stride = qkv.columns
        let headSize = width / heads
        let scale = 1 / Float(headSize).squareRoot()
        var output = Matrix(uninitialized: queries == nil ? qkv.rows : batch, width)  // every head writes its columns of every row
        qkv.values.withUnsafeBufferPointer { packed in
            output.values.withUnsafeMutableBufferPointer { o in
                let addresses = (Int(bitPattern: packed.baseAddress!), Int(bitPattern: o.baseAddress!))
                // Each (sequence, head) pair is independent: the pairs are shared among the threads,
                // each product small enough that BLAS runs it on the calling thread.
                let units = batch * heads
                let parts = min(units, ComputeThreads.count)
                ComputeThreads.parallel(parts) { part in
                    let packed = UnsafePointer<Float>(bitPattern: addresses.0)!
                    let o = UnsafeMutablePointer<Float>(bitPattern: addresses.1)!
                    let scores = UnsafeMutablePointer<Float>.allocate(capacity: length * length)
                    defer { scores.deallocate() }
                    for unit in ComputeThreads.share(part, of: parts, count: units) {
                        let item = unit / heads, head = unit % heads
                        let sequence = packed + item * length * stride + head * headSize
                        let k = sequence + width
                        let v = sequence + 2 * width
                        // A single query at position p sees keys 0...p when causal, so needs no mask.
                        let (q, rows, keys, out): (UnsafePointer<Float>, Int, Int, UnsafeMutablePointer<Float>)
                        if let position = queries?[item] {
                            (q, rows, keys) = (sequence + position * stride, 1, causal ? position + 1 : length)
                            out = o + item * width + head * headSize
                        } else {
                            (q, rows, keys) = (sequence, length, length)
                            out = o + item * length * width + head * headSize
                        }
                        // scores = scale · Q_h K_hᵀ  [rows, keys]
                        cblas_sgemm(
                            CblasRowMajor, CblasNoTrans, CblasTrans,
                            Int32(rows), Int32(keys), Int32(headSize),
                            scale, q, Int32(stride), k, Int32(stride),
                            0, scores, Int32(keys))
                        softmaxRows(scores, rows: rows, columns: keys, causal: causal && rows > 1)
                        // out_h = P V_h  [rows, headSize]
                        cblas_sgemm(
                            CblasRowMajor, CblasNoTrans, CblasNoTrans,
                            Int32(rows), Int32(headSize), Int32(keys),
                            1, scores, Int32(keys), v, Int32(stride),
                            0, out, Int32(width))
                    }
                }
            }
        }
        return output
    }

    /// Numerically stable softmax of each row; with `causal`, entries right of the diagonal become 0.
    static func softmaxRows(_ data: UnsafeMutablePointer<Float>, rows: Int, columns: Int, causal: Bool) {
        // The same code built for the widest vectors this processor has (see VectorMath.swift).
        switch ProductKernel.best {
        #if arch(x86_64)
        case .avx512: KernelsAVX512.ElementWise.softmaxRows(data, rows: rows, columns: columns, causal: causal)
        case .avx2: KernelsAVX2.ElementWise.softmaxRows(data, rows: rows, columns: columns, causal: causal)
        #endif
        default: VectorMath.softmaxRows(data, rows: rows, columns: columns, causal: causal)
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

/// Threads one operation may use, in the Swift kernels and in BLAS.
public enum ComputeThreads {
    nonisolated(unsafe) private static var chosen = ProcessInfo.processInfo.activeProcessorCount

    public static func set(_ count: Int) {
        chosen = max(1, count)
        configureBLAS()
    }

    public static var count: Int { chosen }

    /// Calls `body(part)` for every part in `0..<parts` on up to `count` threads; returns when all have
    /// finished. Parts must be independent.
    public static func parallel(_ parts: Int, _ body: @Sendable (Int) -> Void) {
        if #available(macOS 15.0, *) {
            pool.run(parts: parts, body)
        } else {
            DispatchQueue.concurrentPerform(iterations: parts, execute: body)
        }
    }

    /// Started at the first parallel section, with the thread count chosen by then.
    @available(macOS 15.0, *)
    private static let pool = WorkerPool(workers: chosen - 1)

    /// Part `part` of `parts` nearly equal, consecutive shares of `0..<count`.
    public static func share(_ part: Int, of parts: Int, count: Int) -> Range<Int> {
        (part * count / parts)..<((part + 1) * count / parts)
    }

    /// Where the Swift kernels do the products, BLAS only gets attention's small products, which the
    /// caller already spreads over threads: its own threads would only wait, spinning, on the same
    /// cores. Elsewhere BLAS does the products with every thread.
    static func configureBLAS() {
        openblas_set_num_threads(Int32(ProductKernel.best == .blas ? chosen : 1))
    }

    /// Once per process, before the first weight is prepared: BLAS threads, and the allocator told to
    /// keep the buffers a forward pass frees (CAllocator/allocator.c says why).
    static let configured: Void = {
        configureBLAS()
        loupe_keep_freed_memory()
    }()
}
