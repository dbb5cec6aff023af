import Foundation

/// A value a PyTorch state dict's pickle builds. The reader knows nothing else: it interprets the
/// opcodes itself, and a global is only ever a name from `PickleGlobal`, never imported or called.
enum PickleValue {
    case none
    case bool(Bool)
    case int(Int)
    case float(Double)
    case string(String)
    case tuple([PickleValue])
    case list(PickleList)
    case dict(PickleDict)
    case global(PickleGlobal)
    case storage(StorageReference)
    case tensor(TensorReference)
}

/// Lists and dicts are filled after they are memoised, so the memo holds them by reference.
final class PickleList { var items: [PickleValue] = [] }
final class PickleDict { var items: [(key: PickleValue, value: PickleValue)] = [] }

/// The globals a state dict names; a pickle naming any other is refused.
enum PickleGlobal: String, CaseIterable {
    case orderedDict = "collections.OrderedDict"
    case rebuildTensor = "torch._utils._rebuild_tensor_v2"
    case rebuildParameter = "torch._utils._rebuild_parameter"
    case floatStorage = "torch.FloatStorage"
    case halfStorage = "torch.HalfStorage"
    case bfloat16Storage = "torch.BFloat16Storage"
    /// Older transformers checkpoints keep `position_ids` buffers as int64.
    case longStorage = "torch.LongStorage"

    /// The safetensors name of a storage type's values.
    var storageDType: String? {
        switch self {
        case .floatStorage: "F32"
        case .halfStorage: "F16"
        case .bfloat16Storage: "BF16"
        case .longStorage: "I64"
        case .orderedDict, .rebuildTensor, .rebuildParameter: nil
        }
    }
}

/// One storage of the checkpoint: the zip entry `data/<key>`, `count` elements of `dtype`.
struct StorageReference {
    let key: String
    let dtype: String
    let elementSize: Int
    let count: Int
}

/// A tensor as `_rebuild_tensor_v2` describes it: a view of a storage, in elements.
struct TensorReference {
    let storage: StorageReference
    let offset: Int
    let shape: [Int]
    let strides: [Int]
}

/// Runs the opcodes of pickle protocols 2 to 5 that `torch.save` writes for a state dict, on a stack of
/// `PickleValue`s. Every other opcode, every other global and every call other than the few a state dict
/// makes are errors, so nothing a checkpoint holds is ever executed.
struct RestrictedUnpickler {
    private let data: UnsafeRawBufferPointer
    private let fail: (String) -> CLIPError
    private var position = 0
    private var stack: [PickleValue] = []
    private var marks: [Int] = []
    private var memo: [Int: PickleValue] = [:]

    init(_ data: UnsafeRawBufferPointer, fail: @escaping (String) -> CLIPError) {
        self.data = data
        self.fail = fail
    }

    mutating func load() throws -> PickleValue {
        while true {
            let opcode = try byte()
            switch opcode {
            case 0x80: guard try byte() <= 5 else { throw fail("the pickle uses a protocol newer than 5") }  // PROTO
            case 0x95: _ = try bytes(8)  // FRAME: a length hint
            case 0x2E: return try pop()  // STOP
            case 0x28: marks.append(stack.count)  // MARK
            case 0x29: stack.append(.tuple([]))  // EMPTY_TUPLE
            case 0x5D: stack.append(.list(PickleList()))  // EMPTY_LIST
            case 0x7D: stack.append(.dict(PickleDict()))  // EMPTY_DICT
            case 0x74: stack.append(.tuple(try popToMark()))  // TUPLE
            case 0x85, 0x86, 0x87:  // TUPLE1, TUPLE2, TUPLE3
                let count = Int(opcode - 0x84)
                guard stack.count >= count + (marks.last ?? 0) else { throw fail("the pickle's stack is too short") }
                let items = Array(stack.suffix(count))
                stack.removeLast(count)
                stack.append(.tuple(items))
            case 0x4E: stack.append(.none)  // NONE
            case 0x88: stack.append(.bool(true))  // NEWTRUE
            case 0x89: stack.append(.bool(false))  // NEWFALSE
            case 0x4A: stack.append(.int(Int(Int32(truncatingIfNeeded: try littleEndian(4)))))  // BININT
            case 0x4B: stack.append(.int(Int(try byte())))  // BININT1
            case 0x4D: stack.append(.int(Int(try littleEndian(2))))  // BININT2
            case 0x8A: stack.append(.int(try long(count: Int(try byte()))))  // LONG1
            case 0x47: stack.append(.float(Double(bitPattern: try bigEndian64())))  // BINFLOAT
            case 0x58: stack.append(.string(try text(count: Int(try littleEndian(4)))))  // BINUNICODE
            case 0x8C: stack.append(.string(try text(count: Int(try byte()))))  // SHORT_BINUNICODE
            case 0x8D: stack.append(.string(try text(count: try size(try littleEndian(8)))))  // BINUNICODE8
            case 0x71: try put(Int(try byte()))  // BINPUT
            case 0x72: try put(Int(try littleEndian(4)))  // LONG_BINPUT
            case 0x94: try put(memo.count)  // MEMOIZE
            case 0x68: try get(Int(try byte()))  // BINGET
            case 0x6A: try get(Int(try littleEndian(4)))  // LONG_BINGET
            case 0x63: stack.append(.global(try global(module: try line(), name: try line())))  // GLOBAL
            case 0x93:  // STACK_GLOBAL
                guard case .string(let name) = try pop(), case .string(let module) = try pop() else {
                    throw fail("STACK_GLOBAL without two names")
                }
                stack.append(.global(try global(module: module, name: name)))
            case 0x51: stack.append(.storage(try storage(persistentID: try pop())))  // BINPERSID
            case 0x52:  // REDUCE
                let arguments = try pop()
                stack.append(try call(try pop(), arguments))
            case 0x62:  // BUILD: state set on an OrderedDict is its `_metadata`, which loading does not need
                _ = try pop()
                guard case .dict = try top() else { throw fail("BUILD on something other than a dict") }
            case 0x73:  // SETITEM
                let value = try pop()
                let key = try pop()
                try dictionary().items.append((key, value))
            case 0x75:  // SETITEMS
                let items = try popToMark()
                guard items.count % 2 == 0 else { throw fail("SETITEMS with an odd number of items") }
                let target = try dictionary()
                for pair in stride(from: 0, to: items.count, by: 2) { target.items.append((items[pair], items[pair + 1])) }
            case 0x61:  // APPEND
                let value = try pop()
                try list().items.append(value)
            case 0x65:  // APPENDS
                let items = try popToMark()
                try list().items.append(contentsOf: items)
            default:
                throw fail(String(format: "the pickle uses opcode 0x%02X, which a state dict does not", opcode))
            }
        }
    }

    // MARK: - Calls a state dict makes

    private func global(module: String, name: String) throws -> PickleGlobal {
        guard let known = PickleGlobal(rawValue: "\(module).\(name)") else {
            throw fail("the pickle names \(module).\(name), which is not part of a state dict; nothing in the file was run")
        }
        return known
    }

    /// `('storage', StorageType, key, location, count)`, as `torch.save` writes each storage.
    private func storage(persistentID: PickleValue) throws -> StorageReference {
        guard case .tuple(let fields) = persistentID, fields.count == 5, case .string("storage") = fields[0],
            case .global(let type) = fields[1], let dtype = type.storageDType, let size = Checkpoint.elementSize(dtype),
            case .string(let key) = fields[2], case .int(let count) = fields[4], count >= 0
        else { throw fail("a persistent id is not a storage of float32, float16, bfloat16 or int64 values") }
        return StorageReference(key: key, dtype: dtype, elementSize: size, count: count)
    }

    private func call(_ callable: PickleValue, _ arguments: PickleValue) throws -> PickleValue {
        guard case .global(let function) = callable, case .tuple(let arguments) = arguments else {
            throw fail("REDUCE on something other than a known global")
        }
        switch function {
        case .orderedDict:
            guard arguments.isEmpty else { throw fail("OrderedDict built from arguments") }
            return .dict(PickleDict())
        case .rebuildTensor:
            // (storage, offset, size, stride, requires_grad, backward_hooks[, metadata])
            guard (6...7).contains(arguments.count), case .storage(let storage) = arguments[0], case .int(let offset) = arguments[1],
                let shape = integers(arguments[2]), let strides = integers(arguments[3]), shape.count == strides.count
            else { throw fail("_rebuild_tensor_v2 with arguments that are not a tensor's") }
            return .tensor(TensorReference(storage: storage, offset: offset, shape: shape, strides: strides))
        case .rebuildParameter:
            // (tensor, requires_grad, backward_hooks)
            guard arguments.count == 3, case .tensor = arguments[0] else { throw fail("_rebuild_parameter without a tensor") }
            return arguments[0]
        case .floatStorage, .halfStorage, .bfloat16Storage, .longStorage:
            throw fail("the pickle calls \(function.rawValue), which a state dict does not")
        }
    }

    private func integers(_ value: PickleValue) -> [Int]? {
        guard case .tuple(let items) = value else { return nil }
        var result = [Int]()
        for item in items {
            guard case .int(let number) = item else { return nil }
            result.append(number)
        }
        return result
    }

    // MARK: - Stack and memo

    private mutating func pop() throws -> PickleValue {
        guard stack.count > (marks.last ?? 0), let value = stack.popLast() else { throw fail("the pickle's stack is too short") }
        return value
    }

    private func top() throws -> PickleValue {
        guard let value = stack.last else { throw fail("the pickle's stack is empty") }
        return value
    }

    private mutating func popToMark() throws -> [PickleValue] {
        guard let mark = marks.popLast() else { throw fail("the pickle has no mark to pop to") }
        let items = Array(stack[mark...])
        stack.removeSubrange(mark...)
        return items
    }

    private func dictionary() throws -> PickleDict {
        guard case .dict(let target) = try top() else { throw fail("SETITEM on something other than a dict") }
        return target
    }

    private func list() throws -> PickleList {
        guard case .list(let target) = try top() else { throw fail("APPEND on something other than a list") }
        return target
    }

    private mutating func put(_ index: Int) throws { memo[index] = try top() }

    private mutating func get(_ index: Int) throws {
        guard let value = memo[index] else { throw fail("the pickle refers to memo entry \(index), which it never stored") }
        stack.append(value)
    }

    // MARK: - Reading bytes

    private mutating func bytes(_ count: Int) throws -> UnsafeRawBufferPointer {
        guard count >= 0, count <= data.count - position else { throw fail("the pickle ends in the middle of an opcode") }
        defer { position += count }
        return UnsafeRawBufferPointer(rebasing: data[position..<position + count])
    }

    private mutating func byte() throws -> UInt8 { try bytes(1)[0] }

    private mutating func littleEndian(_ count: Int) throws -> UInt64 {
        try bytes(count).reversed().reduce(0) { $0 << 8 | UInt64($1) }
    }

    private mutating func bigEndian64() throws -> UInt64 { try bytes(8).reduce(0) { $0 << 8 | UInt64($1) } }

    private func size(_ value: UInt64) throws -> Int {
        guard value <= UInt64(data.count) else { throw fail("the pickle announces a string longer than itself") }
        return Int(value)
    }

    /// A two's-complement little-endian integer of up to 8 bytes.
    private mutating func long(count: Int) throws -> Int {
        guard count <= 8 else { throw fail("the pickle has an integer of \(count) bytes") }
        guard count > 0 else { return 0 }
        let raw = try littleEndian(count)
        let shift = UInt64(64 - 8 * count)
        return Int(truncatingIfNeeded: Int64(bitPattern: raw << shift) >> Int64(shift))
    }

    private mutating func text(count: Int) throws -> String {
        guard let text = String(validating: try bytes(count), as: UTF8.self) else { throw fail("the pickle has a string that is not UTF-8") }
        return text
    }

    /// A line of GLOBAL's operand: a module or a name, ending in a newline.
    private mutating func line() throws -> String {
        var characters = [UInt8]()
        while true {
            let next = try byte()
            if next == 0x0A { break }
            guard characters.count < 256 else { throw fail("the pickle has a global name over 256 bytes") }
            characters.append(next)
        }
        return String(decoding: characters, as: UTF8.self)
    }
}
