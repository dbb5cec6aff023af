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
