import Crypto
import Foundation
@testable import GantryCoordinator
import Testing

/// Sealing: a value opens only with its key, under its own name and scope.
@Suite("Secret box")
struct SecretBoxTests {
    let key = SecretKey.generate()

    @Test func sealsAndOpens() throws {
        let sealed = try SecretBox.seal("s3cr3t-value", name: "DEPLOY_TOKEN", scope: .environment("production"), key: key)
        #expect(sealed.range(of: Data("s3cr3t-value".utf8)) == nil)
        #expect(try SecretBox.open(sealed, name: "DEPLOY_TOKEN", scope: .environment("production"), key: key) == "s3cr3t-value")
        // A fresh nonce each time: the same value never seals to the same bytes.
        #expect(try SecretBox.seal("s3cr3t-value", name: "DEPLOY_TOKEN", scope: .pipeline, key: key) != sealed)
    }

    @Test func aMovedRowDoesNotOpen() throws {
        let sealed = try SecretBox.seal("s3cr3t-value", name: "DEPLOY_TOKEN", scope: .environment("staging"), key: key)
        #expect(throws: SecretBoxError.self) {
            try SecretBox.open(sealed, name: "DEPLOY_TOKEN", scope: .environment("production"), key: key)
        }
        #expect(throws: SecretBoxError.self) {
            try SecretBox.open(sealed, name: "NPM_TOKEN", scope: .environment("staging"), key: key)
        }
        #expect(throws: SecretBoxError.self) {
            try SecretBox.open(sealed, name: "DEPLOY_TOKEN", scope: .environment("staging"), key: SecretKey.generate())
        }
        var tampered = sealed
        tampered[tampered.count - 1] ^= 1
        #expect(throws: SecretBoxError.self) {
            try SecretBox.open(tampered, name: "DEPLOY_TOKEN", scope: .environment("staging"), key: key)
        }
        #expect(throws: SecretBoxError.self) {
            try SecretBox.open(Data([1, 2, 3]), name: "DEPLOY_TOKEN", scope: .environment("staging"), key: key)
        }
    }

    @Test func keyFileRoundTripAndPermissions() throws {
        let directory = NSTemporaryDirectory() + "gantry-key-\(UUID().uuidString)"
        try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(atPath: directory) }
        let path = directory + "/secrets.key"
        try key.write(to: path)
        let attributes = try FileManager.default.attributesOfItem(atPath: path)
        #expect((attributes[.posixPermissions] as? NSNumber)?.intValue == 0o600)
        let read = try SecretKey.read(from: path)
        #expect(read.id == key.id && read.id.count == 8)
        chmod(path, 0o644)
        #expect(throws: SecretKeyError.tooOpen(path)) { try SecretKey.read(from: path) }
        chmod(path, 0o600)
        try "not a key\n".write(toFile: path, atomically: false, encoding: .utf8)
        #expect(throws: SecretKeyError.malformed(path)) { try SecretKey.read(from: path) }
    }

    @Test func scopesParseAndPrint() throws {
        for text in ["pipeline", "environment:production", "repository:https://git.example.com/app.git"] {
            #expect(try SecretScope(parsing: text).description == text)
        }
        for bad in ["", "global", "environment:", "environment:a/b", "repository:", "repository:a\nb", "project:app"] {
            #expect(throws: SecretRuleError.self) { try SecretScope(parsing: bad) }
        }
        do {
            _ = try SecretScope(parsing: "project:app")
        } catch {
            #expect(error.description.contains("projects do not exist yet"))
        }
    }

    @Test func valueRules() {
        #expect(throws: SecretRuleError.self) { try SecretValueRule.check(name: "TOKEN", value: "short") }
        #expect(throws: SecretRuleError.self) { try SecretValueRule.check(name: "TOKEN", value: "1234567") }
        #expect(throws: SecretRuleError.self) { try SecretValueRule.check(name: "TOKEN", value: "12345678\u{0}") }
        #expect(throws: SecretRuleError.self) {
            try SecretValueRule.check(name: "TOKEN", value: String(repeating: "x", count: 64 * 1024 + 1))
        }
        #expect(throws: SecretRuleError.self) { try SecretValueRule.check(name: "lower", value: "12345678") }
        #expect(throws: SecretRuleError.self) { try SecretValueRule.check(name: "GANTRY_TOKEN", value: "12345678") }
        #expect(throws: Never.self) { try SecretValueRule.check(name: "TOKEN", value: "12345678") }
        #expect(throws: Never.self) { try SecretValueRule.check(name: "TOKEN", value: String(repeating: "x", count: 64 * 1024)) }
        // The message never carries the value.
        do {
            try SecretValueRule.check(name: "TOKEN", value: "abc")
        } catch {
            #expect(!error.description.contains("abc"))
        }
    }
}
