import Foundation

/// The real Milvus the tests run against: Milvus Lite's gRPC server at `LOUPE_TEST_MILVUS_URL`, which
/// `scripts/test.sh` starts with `scripts/milvus.sh` (its own data folder and port) and stops at the end.
/// Every caller gets a database of its own (the store makes it), so tests never see each other's collections.
public enum TestMilvus {
    public static func freshURL() throws -> String {
        guard let url = ProcessInfo.processInfo.environment["LOUPE_TEST_MILVUS_URL"], url.hasPrefix("milvus://") else {
            throw TestPostgres.Failure(description: """
                LOUPE_TEST_MILVUS_URL is not set: run scripts/test.sh, which starts Milvus Lite for the tests, or export \
                LOUPE_TEST_MILVUS_URL=$(LOUPE_MILVUS_DATA=/var/tmp/loupe-milvus/test-data LOUPE_MILVUS_PORT=19541 scripts/milvus.sh start)
                """)
        }
        return url + "/test_" + UUID().uuidString.replacingOccurrences(of: "-", with: "").lowercased()
    }
}
