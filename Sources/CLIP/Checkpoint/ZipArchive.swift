import Foundation

/// The entries of a zip file held in a memory mapping, read from its central directory (zip64 too), as
/// PyTorch writes its checkpoints: a pickle and one entry per storage, stored without compression.
struct ZipArchive {
    struct Entry {
        let name: String
        /// 0 = stored; anything else is compressed, which a checkpoint's storages never are.
        let method: UInt16
        let size: Int
        /// From the start of the file: where the entry's bytes begin.
        let dataOffset: Int
    }

    let file: MappedFile
    private(set) var entries: [String: Entry] = [:]

    init(file: MappedFile) throws {
        self.file = file
        let reader = ByteReader(file: file)
        let end = try Self.endOfCentralDirectory(reader)
        var count = Int(try reader.u16(end + 10))
        var directorySize = Int(try reader.u32(end + 12))
        var directoryOffset = Int(try reader.u32(end + 16))
        if count == 0xFFFF || directorySize == 0xFFFF_FFFF || directoryOffset == 0xFFFF_FFFF {
            // Zip64: a locator just before the end record points to the 64-bit end record.
            let locator = end - 20
            guard locator >= 0, try reader.u32(locator) == 0x0706_4B50 else { throw reader.fail("zip64 end record locator missing") }
            let record = try reader.offset(reader.u64(locator + 8))
            guard try reader.u32(record) == 0x0606_4B50 else { throw reader.fail("zip64 end record missing") }
            count = try reader.offset(reader.u64(record + 32))
            directorySize = try reader.offset(reader.u64(record + 40))
            directoryOffset = try reader.offset(reader.u64(record + 48))
        }
        guard directoryOffset <= file.size, directorySize <= file.size - directoryOffset, count <= directorySize / 46 else {
            throw reader.fail("the central directory does not fit the file")
        }
        var position = directoryOffset
        for _ in 0..<count {
            let entry = try Self.centralEntry(at: &position, reader: reader)
            guard entries[entry.name] == nil else { throw reader.fail("entry \(entry.name) appears twice") }
            entries[entry.name] = entry
        }
    }

    /// The bytes of a stored entry, in the mapping.
    func bytes(of entry: Entry) -> UnsafeRawBufferPointer {
        UnsafeRawBufferPointer(start: file.base + entry.dataOffset, count: entry.size)
    }

    private static func endOfCentralDirectory(_ reader: ByteReader) throws -> Int {
        // The end record is 22 bytes plus a comment of up to 65,535.
        let last = reader.file.size - 22
        guard last >= 0 else { throw reader.fail("too short for a zip file") }
        for position in stride(from: last, through: max(0, last - 65_535), by: -1) where try reader.u32(position) == 0x0605_4B50 {
            return position
        }
        throw reader.fail("not a zip file (no end of central directory)")
    }

    private static func centralEntry(at position: inout Int, reader: ByteReader) throws -> Entry {
        guard try reader.u32(position) == 0x0201_4B50 else { throw reader.fail("a central directory entry is malformed") }
        let flags = try reader.u16(position + 8)
        let method = try reader.u16(position + 10)
        var compressedSize = Int(try reader.u32(position + 20))
        var size = Int(try reader.u32(position + 24))
        let nameLength = Int(try reader.u16(position + 28))
        let extraLength = Int(try reader.u16(position + 30))
        let commentLength = Int(try reader.u16(position + 32))
        var localOffset = Int(try reader.u32(position + 42))
        let name = String(decoding: try reader.bytes(position + 46, nameLength), as: UTF8.self)
        // A zip64 extra field holds, in this order, each 32-bit field that is saturated.
        var extra = position + 46 + nameLength
        let extraEnd = extra + extraLength
        while extra + 4 <= extraEnd {
            let id = try reader.u16(extra)
            let length = Int(try reader.u16(extra + 2))
            if id == 0x0001 {
                var field = extra + 4
                func next() throws -> Int {
                    guard field + 8 <= extra + 4 + length else { throw reader.fail("entry \(name) has a short zip64 field") }
                    defer { field += 8 }
                    return try reader.offset(reader.u64(field))
                }
                if size == 0xFFFF_FFFF { size = try next() }
                if compressedSize == 0xFFFF_FFFF { compressedSize = try next() }
                if localOffset == 0xFFFF_FFFF { localOffset = try next() }
            }
            extra += 4 + length
        }
        position = extraEnd + commentLength
        guard flags & 1 == 0 else { throw reader.fail("entry \(name) is encrypted") }
        // The data starts after the local header, whose extra field may differ from the central one.
        guard try reader.u32(localOffset) == 0x0403_4B50 else { throw reader.fail("entry \(name) has no local header") }
        let dataOffset = localOffset + 30 + Int(try reader.u16(localOffset + 26)) + Int(try reader.u16(localOffset + 28))
        guard dataOffset <= reader.file.size, compressedSize <= reader.file.size - dataOffset else {
            throw reader.fail("entry \(name) points outside the file")
        }
        return Entry(name: name, method: method, size: method == 0 ? compressedSize : size, dataOffset: dataOffset)
    }
}

/// Little-endian reads from a mapped file, each checked against its end.
struct ByteReader {
    let file: MappedFile

    func fail(_ reason: String) -> CLIPError { .invalidWeights(file: file.path, reason: reason) }

    func bytes(_ position: Int, _ count: Int) throws -> UnsafeRawBufferPointer {
        guard position >= 0, count >= 0, position <= file.size, count <= file.size - position else {
            throw fail("a read at byte \(position) runs past the end of the file")
        }
        return UnsafeRawBufferPointer(start: file.base + position, count: count)
    }

    func u16(_ position: Int) throws -> UInt16 { UInt16(littleEndian: try bytes(position, 2).loadUnaligned(as: UInt16.self)) }
    func u32(_ position: Int) throws -> UInt32 { UInt32(littleEndian: try bytes(position, 4).loadUnaligned(as: UInt32.self)) }
    func u64(_ position: Int) throws -> UInt64 { UInt64(littleEndian: try bytes(position, 8).loadUnaligned(as: UInt64.self)) }

    /// A 64-bit size or offset as an Int, refused when it cannot be one.
    func offset(_ value: UInt64) throws -> Int {
        guard value <= UInt64(Int.max) else { throw fail("an offset of \(value) bytes does not fit") }
        return Int(value)
    }
}
