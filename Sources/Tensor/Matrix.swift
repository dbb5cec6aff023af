/// The vector type of Tensor's own element-wise code (VectorMath.swift): eight lanes, two SSE
/// registers on an x86-64 processor without AVX.
typealias Lanes = SIMD8<Float>

/// A dense row-major Float32 matrix: the one activation type of the forward pass.
public struct Matrix: Sendable, Equatable {
    public let rows: Int
    public let columns: Int
    public var values: [Float]

    public init(rows: Int, columns: Int, values: [Float]) {
        precondition(values.count == rows * columns, "matrix values do not match its shape")
        self.rows = rows
        self.columns = columns
        self.values = values
    }

    public init(zeros rows: Int, _ columns: Int) {
        self.init(rows: rows, columns: columns, values: [Float](repeating: 0, count: rows * columns))
    }

    /// A matrix whose every value the caller writes before reading: no time spent zeroing it.
    init(uninitialized rows: Int, _ columns: Int) {
        self.init(rows: rows, columns: columns, values: [Float](unsafeUninitializedCapacity: rows * columns) { _, count in
            count = rows * columns
        })
    }

    public subscript(row: Int, column: Int) -> Float {
        get { values[row * columns + column] }
        set { values[row * columns + column] = newValue }
    }

    /// One row as an array.
    public func row(_ index: Int) -> [Float] {
        Array(values[(index * columns)..<((index + 1) * columns)])
    }

    /// The rows `indices` gathered into a new matrix.
    public func gatherRows(_ indices: [Int]) -> Matrix {
        var out = [Float]()
        out.reserveCapacity(indices.count * columns)
        for index in indices { out.append(contentsOf: values[(index * columns)..<((index + 1) * columns)]) }
        return Matrix(rows: indices.count, columns: columns, values: out)
    }
}

/// A read-only view of weights that live elsewhere (memory-mapped or converted once at load time).
public struct WeightView: @unchecked Sendable {
    public let base: UnsafePointer<Float>
    public let shape: [Int]

    public init(base: UnsafePointer<Float>, shape: [Int]) {
        self.base = base
        self.shape = shape
    }

    public var count: Int { shape.reduce(1, *) }
    public var buffer: UnsafeBufferPointer<Float> { UnsafeBufferPointer(start: base, count: count) }
}

/// Weights built at load time (such as fused projections): owned here, freed with the last reference.
public final class WeightStorage: @unchecked Sendable {
    private var buffers: [UnsafeMutablePointer<Float>] = []

    public init() {}

    deinit { for buffer in buffers { buffer.deallocate() } }

    /// Concatenates `parts` along their first dimension into one new tensor.
    public func concatenate(_ parts: [WeightView]) -> WeightView {
        let rest = Array(parts[0].shape.dropFirst())
        precondition(parts.allSatisfy { Array($0.shape.dropFirst()) == rest }, "concatenated weights differ in shape")
        let count = parts.reduce(0) { $0 + $1.count }
        let buffer = UnsafeMutablePointer<Float>.allocate(capacity: count)
        buffers.append(buffer)
        var offset = 0
        for part in parts {
            (buffer + offset).update(from: part.base, count: part.count)
            offset += part.count
        }
        return WeightView(base: buffer, shape: [parts.reduce(0) { $0 + $1.shape[0] }] + rest)
    }
}
