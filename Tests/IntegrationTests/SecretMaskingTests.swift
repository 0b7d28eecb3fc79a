import AsyncHTTPClient
import Foundation
import GantryProtocol
import NIOCore
import NIOFoundationCompat
import Subprocess
import Testing

#if canImport(System)
import System
#else
import SystemPackage
#endif

/// A secret a step prints never reaches the coordinator: not split across two output
/// writes a second apart (so across log chunks), not in base64, not JSON-escaped, neither
/// in the stored log nor in a live follow that was reading while the step ran.
@Suite("Secret masking, end to end", .serialized, .timeLimit(.minutes(3)))
struct SecretMaskingTests {
    static let value = "tok\"en/s3cr3t-Value-0123456789"

    @Test func aSecretSplitAcrossChunksAndInBase64IsMaskedInTheStoredLogAndTheLiveFollow() async throws {
        try await TestCluster.with("masking") { cluster in
            let set = try await Subprocess.run(
                .path(FilePath(cluster.binaries + "/gantry")),
                arguments: ["secret", "set", "DEPLOY_TOKEN", "--server", cluster.serverURL],
                environment: .inherit.updating(["GANTRY_TOKEN": cluster.adminToken]), input: .string(Self.value),
                output: .string(limit: 1 << 16), error: .string(limit: 1 << 16))
            #expect(set.terminationStatus.isSuccess, "\(set.standardError)")
            try await cluster.startAgent(slot: "1")

            let pipeline = try await cluster.submit(
                #"""
                steps:
                  - key: leak
                    secrets: [DEPLOY_TOKEN]
                    command: |
                      half=$(( ${#DEPLOY_TOKEN} / 2 ))
                      first=$(printf %s "$DEPLOY_TOKEN" | cut -c1-$half)
                      rest=$(printf %s "$DEPLOY_TOKEN" | cut -c$((half + 1))-)
                      printf 'token=%s' "$first"
                      sleep 1
                      printf '%s\n' "$rest"
                      printf %s "$DEPLOY_TOKEN" | base64
                      printf 'user:%s' "$DEPLOY_TOKEN" | base64
                      escaped=$(printf %s "$DEPLOY_TOKEN" | sed 's/["\\/]/\\&/g')
                      printf '{"token":"%s"}\n' "$escaped"
                      echo done
                """#)
            let job = try #require(pipeline.jobs.first)

            // Follow the log live while the step runs.
            let follow = Task { () throws -> Data in
                var request = HTTPClientRequest(url: cluster.serverURL + "/v1/jobs/\(job.id)/log?follow=1")
                request.headers.add(name: "Authorization", value: "Bearer \(cluster.adminToken)")
                let response = try await cluster.http.execute(request, timeout: .seconds(60))
                var received = Data()
                for try await buffer in response.body { received.append(contentsOf: buffer.readableBytesView) }
                return received
            }
            let done = try await cluster.waitForPipeline(pipeline.id)
            #expect(done.state == "succeeded")
            let followed = try await follow.value
            let stored = try await cluster.log(job.id)

            let forms = [
                Self.value, Data(Self.value.utf8).base64EncodedString(), String(Self.value.prefix(Self.value.count / 2)),
                String(Self.value.suffix(Self.value.count - Self.value.count / 2)), #"tok\"en\/s3cr3t"#,
                Data("user:\(Self.value)".utf8).base64EncodedString().dropFirst(8).prefix(20).description,
            ]
            for (name, log) in [("stored", stored), ("followed", followed)] {
                let text = String(decoding: log, as: UTF8.self)
                #expect(text.hasPrefix("token=***\n"), "\(name): \(text)")
                #expect(text.hasSuffix("done\n"), "\(name): \(text)")
                for form in forms { #expect(!text.contains(form), "\(name) log shows \(form): \(text)") }
                #expect(text.components(separatedBy: "***").count - 1 >= 4, "\(name): \(text)")
            }
            #expect(followed == stored)
            // Exactly: only the characters of `user:…`'s base64 that do not depend on the
            // secret survive.
            #expect(String(decoding: stored, as: UTF8.self) == "token=***\n***\ndXNlcjp***k=\n{\"token\":\"***\"}\ndone\n")
        }
    }
}
