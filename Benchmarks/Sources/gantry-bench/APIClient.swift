import AsyncHTTPClient
import BenchKit
import Foundation
import GantryProtocol
import NIOCore
import NIOFoundationCompat
import NIOHTTP1

/// The coordinator's HTTP API as the benchmark uses it: submit, poll cheaply, read logs.
///
/// One shared AsyncHTTPClient with keep-alive, so a measured request is one request on a
/// warm connection, as a CI front end would make it.
struct APIClient: Sendable {
    let base: String
    let token: String
    /// The shared client for plain http; a cluster serving its API over TLS
    /// (`serve --http-tls`) passes one that trusts the coordinator's CA.
    var http: HTTPClient = .shared

    func request(_ method: HTTPMethod, _ path: String, body: Data? = nil, limit: Int = 64 << 20) async throws -> (
        status: Int, body: ByteBuffer
    ) {
        var request = HTTPClientRequest(url: base + path)
        request.method = method
        request.headers.add(name: "Authorization", value: "Bearer \(token)")
        if let body {
            request.headers.add(name: "Content-Type", value: "application/json")
            request.body = .bytes(ByteBuffer(data: body))
        }
        let response = try await http.execute(request, timeout: .seconds(120))
        let bytes = try await response.body.collect(upTo: limit)
        return (Int(response.status.code), bytes)
    }

    /// `POST /v1/pipelines`; returns the pipeline as accepted (201).
    func submit(
        yaml: String, file: String = "bench.yml", repository: String? = nil, commit: String? = nil, branch: String? = nil
    ) async throws -> API.Pipeline {
        let body = try API.encoder.encode(
            API.SubmitPipeline(yaml: yaml, file: file, repository: repository, commit: commit, branch: branch))
        let (status, bytes) = try await request(.POST, "/v1/pipelines", body: body)
        guard status == 201 else {
            throw HarnessError("POST /v1/pipelines answered \(status): \(String(buffer: bytes).prefix(500))")
        }
        return try API.decoder.decode(API.Pipeline.self, from: Data(buffer: bytes))
    }

    func pipeline(_ id: String) async throws -> API.Pipeline {
        let (status, bytes) = try await request(.GET, "/v1/pipelines/\(id)")
        guard status == 200 else { throw HarnessError("GET /v1/pipelines/\(id) answered \(status)") }
        return try API.decoder.decode(API.Pipeline.self, from: Data(buffer: bytes))
    }

    func job(_ id: String) async throws -> API.Job {
        let (status, bytes) = try await request(.GET, "/v1/jobs/\(id)")
        guard status == 200 else { throw HarnessError("GET /v1/jobs/\(id) answered \(status)") }
        return try API.decoder.decode(API.Job.self, from: Data(buffer: bytes))
    }

    /// Whether any job is not finished yet: one indexed query returning at most one row,
    /// so polling it does not load the coordinator the way fetching a 2,000-job pipeline
    /// would.
    func anyUnfinishedJob() async throws -> Bool {
        let (status, bytes) = try await request(.GET, "/v1/jobs?state=waiting,queued,leased,running,lost&limit=1")
        guard status == 200 else { throw HarnessError("GET /v1/jobs answered \(status)") }
        return !(try API.decoder.decode([API.Job].self, from: Data(buffer: bytes))).isEmpty
    }

    /// `GET /v1/jobs/{id}/log?follow=1`: returns once the job has ended, with its whole log.
    func followLog(_ jobID: String) async throws -> String {
        let (status, bytes) = try await request(.GET, "/v1/jobs/\(jobID)/log?follow=1")
        guard status == 200 else { throw HarnessError("GET /v1/jobs/\(jobID)/log answered \(status)") }
        return String(buffer: bytes)
    }
}
