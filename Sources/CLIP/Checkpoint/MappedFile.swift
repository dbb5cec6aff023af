import Foundation

/// A read-only memory mapping of a whole file; unmapped when the last reference goes.
final class MappedFile: @unchecked Sendable {
    let path: String
    let base: UnsafeRawPointer
    let size: Int

    init(path: String) throws {
        self.path = path
        let descriptor = open(path, O_RDONLY)
        guard descriptor >= 0 else { throw CLIPError.missingFile(path) }
        defer { close(descriptor) }
        var status = stat()
        guard fstat(descriptor, &status) == 0 else { throw CLIPError.invalidWeights(file: path, reason: "cannot stat") }
        size = Int(status.st_size)
        guard size > 8 else { throw CLIPError.invalidWeights(file: path, reason: "file is \(size) bytes, too short") }
        guard let mapping = mmap(nil, size, PROT_READ, MAP_PRIVATE, descriptor, 0), mapping != MAP_FAILED else {
            throw CLIPError.invalidWeights(file: path, reason: "cannot memory-map the file")
        }
        base = UnsafeRawPointer(mapping)
    }

    deinit { munmap(UnsafeMutableRawPointer(mutating: base), size) }
}
