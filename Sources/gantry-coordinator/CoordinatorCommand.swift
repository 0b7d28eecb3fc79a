import ArgumentParser
import Foundation
import GantryCoordinator
import GantryPostgresStore
import GantryProtocol
import GantryWeb
import Logging

/// `gantry-coordinator`: argument parsing and wiring only; the work is in GantryCoordinator.
@main
struct CoordinatorCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "gantry-coordinator",
        abstract: "The Gantry coordinator: queue, scheduler, agent listener and HTTP API.",
        subcommands: [
            Initialize.self, Serve.self, JoinInfo.self, TokenCommand.self, JoinTokenCommand.self, AuditCommand.self, RotateKey.self, MigrateStore.self,
        ])
}

struct Initialize: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "init", abstract: "Create the CA, the coordinator's certificate, a join token and an admin token.")

    @Option(help: "State directory to create.") var state: String
    @Option(help: "Address agents will dial (HOST:PORT), recorded for join-info.") var advertise: String = "127.0.0.1:7070"
    @Option(parsing: .upToNextOption, help: "DNS names for the server certificate.")
    var dnsName: [String] = ["localhost"]
    @Option(parsing: .upToNextOption, help: "IP addresses for the server certificate.")
    var ipAddress: [String] = ["127.0.0.1", "::1"]
    @Option(
        help: ArgumentHelp(
            "PostgreSQL instead of the SQLite file: postgres://USER@HOST[:PORT]/DATABASE[?sslmode=...].",
            discussion: "Recorded in the state directory for `serve` and the other commands. The password comes from PGPASSWORD, never from this file."))
    var database: String?

    func validate() throws {
        _ = try address(advertise, "--advertise")
        if let database {
            let location: PostgresLocation
            do { location = try PostgresLocation(url: database, environment: [:]) } catch { throw ValidationError("--database: \(error)") }
            if location.password != nil {
                throw ValidationError("--database: leave the password out of the URL (it would be stored in coordinator.json); set PGPASSWORD")
            }
        }
    }

    func run() throws {
        var names = dnsName
        let advertisedHost = try address(advertise, "--advertise").host
        var addresses = ipAddress
        if CertificateAuthority.ipAddressBytes(advertisedHost) != nil {
            if !addresses.contains(advertisedHost) { addresses.append(advertisedHost) }
        } else if !names.contains(advertisedHost) {
            names.append(advertisedHost)
        }
        let directory = CoordinatorStateDirectory(path: state)
        if let database {
            // Connect and migrate now: a wrong URL or an unreachable server fails `init`,
            // not the first `serve`.
            let store = try PostgresStore(url: database, logger: Logger(label: "gantry-coordinator"))
            store.pool.shutdown()
        }
        let info = try directory.initialize(advertise: advertise, dnsNames: names, ipAddresses: addresses, database: database)
        print(
            """
            Initialized \(state).
            Admin API token: \(state)/admin.token
            Join an agent with:
              gantry-agent enroll --coordinator \(info.coordinator) --token \(info.token) --ca-fingerprint \(info.caFingerprint) --state /var/lib/gantry-agent
            """)
    }
}

struct JoinInfo: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "join-info", abstract: "Print the join token, CA fingerprint and coordinator address.")

    @Option(help: "State directory.") var state: String
    @Flag(help: "Print JSON for scripts.") var json = false

    func run() throws {
        let info = try CoordinatorStateDirectory(path: state).joinInfo()
        if json {
            let encoder = JSONEncoder()
            encoder.keyEncodingStrategy = .convertToSnakeCase
            encoder.outputFormatting = [.sortedKeys]
            print(String(decoding: try encoder.encode(info), as: UTF8.self))
        } else {
            print("coordinator:    \(info.coordinator)\ntoken:          \(info.token)\nca_fingerprint: \(info.caFingerprint)")
        }
    }
}

struct Serve: AsyncParsableCommand {
    static let configuration = CommandConfiguration(abstract: "Run the coordinator until SIGTERM.")

    @Option(help: "State directory created by `init`.") var state: String
    @Option(help: "Agent listener address (HOST:PORT; port 0 picks one).") var listen: String = "127.0.0.1:7070"
    @Option(help: "HTTP API address (HOST:PORT). Plain HTTP is refused off loopback: add --http-tls.")
    var http: String = "127.0.0.1:7080"
    @Flag(help: "Serve the API over TLS with STATE/server.pem (from the coordinator's CA), or the files below.")
    var httpTls = false
    @Option(help: "With --http-tls: a PEM certificate chain (leaf first) to serve instead of STATE/server.pem.")
    var httpTlsCertificate: String?
    @Option(help: "With --http-tls: the PEM private key of --http-tls-certificate.")
    var httpTlsKey: String?
    @Flag(help: "Allow plain HTTP on an address other than loopback (something else must encrypt it).")
    var httpInsecure = false
    @Flag(help: "Serve no web dashboard (/ui/): the HTTP API only.")
    var noDashboard = false
    @Option(
        help: ArgumentHelp(
            "The PostgreSQL database (postgres://USER@HOST[:PORT]/DATABASE); default: what `init --database` recorded, else STATE/gantry.sqlite.",
            discussion: "The password comes from PGPASSWORD or the URL."))
    var database: String?
    @Option(help: "With PostgreSQL: the host the other coordinators reach this one at (default: --listen's host, which must then not be a wildcard).")
    var clusterAddress: String?
    @Option(help: "With PostgreSQL: seconds the leader's lease lasts without renewal; a dead leader is replaced after at most this.")
    var leaderTtl: Double = 10

    /// Where the other coordinators relay to this one, if it leads.
    func clusterHost(agents: HostPort) throws -> String {
        if let clusterAddress { return clusterAddress }
        guard !["0.0.0.0", "::", ""].contains(agents.host) else {
            throw ValidationError("--listen \(listen) listens on every address: name the one the other coordinators reach with --cluster-address")
        }
        return agents.host
    }
    @Option(
        help: ArgumentHelp(
            "The API's URL as steps reach it (GANTRY_API_URL, for `gantry meta-data`).",
            discussion: "Default: http(s):// (by --http-tls) and --http's address with the bound port; a wildcard "
                + "address (0.0.0.0, ::) is replaced by the host of `init --advertise`."))
    var apiUrl: String?
    @Option(help: "Heartbeat interval agents are told to use, in seconds.") var heartbeatInterval: Double = 5
    @Option(help: "Seconds without a heartbeat before an agent's jobs are lost (default 3 × heartbeat).")
    var leaseTtl: Double?
    @Option(help: "Log level: trace, debug, info, notice, warning, error.") var logLevel: Logger.Level = .info
    @Option(help: "Most agent connections in total (keep below the descriptor limit).")
    var maxAgentConnections: Int = ConnectionLimits.Configuration().maximumConnections
    @Option(help: "Most agent connections from one address (raise behind a NAT gateway).")
    var maxConnectionsPerAddress: Int = ConnectionLimits.Configuration().maximumPerAddress
    @Option(help: "Most connections still in their TLS handshake or first frame, in total.")
    var maxHandshakes: Int = ConnectionLimits.Configuration().maximumUnauthenticated
    @Option(help: "Most connections still in their handshake from one address.")
    var maxHandshakesPerAddress: Int = ConnectionLimits.Configuration().maximumUnauthenticatedPerAddress
    @Option(help: "Seconds a new agent connection has for its TLS handshake, and again for its first frame.")
    var handshakeTimeout: Double = 5
    @Option(help: "Seconds an HTTP connection may stay idle, or take to send a request head, before it is closed.")
    var httpIdleTimeout: Double = 30
    @Option(
        help: ArgumentHelp(
            "A label key agents may claim only if their join token names it (repeatable; default: queue).",
            discussion: "Giving any replaces the default: repeat --trusted-label-key queue to keep it."))
    var trustedLabelKey: [String] = Array(TrustPolicy.defaultTrustedKeys)
    @Flag(
        help: "Let a step with `environment:` run on any agent. By default it must select a trusted label, so its secrets reach only hosts enrolled for deploys.")
    var allowUntrustedEnvironmentSteps = false
    @Flag(
        help: "Let scheduled builds resolve branches of file:// and local-path repositories (tests, hosts serving repositories from a local disk).")
    var gitAllowFileUrls = false
    @Flag(
        help: "Let notification webhooks (`gantry notification add`) target loopback, private and link-local addresses. Off: an admin's URL cannot reach the coordinator's own network (SSRF).")
    var notificationAllowPrivate = false
    @Option(
        help: ArgumentHelp(
            "A YAML file of deployment environments' protection rules (branches, required_approval, one_at_a_time).",
            discussion: "docs/operations.md, \"Environment rules\". Read once at start; an invalid file stops the start."))
    var environments: String?
    @Option(help: "Days the agent certificates issued and renewed are valid (1 to 825); agents renew after two thirds.")
    var agentCertificateDays: Int = 30
    @Option(help: "Largest artifact or cache archive stored, in bytes (default 4 GiB).")
    var maxArtifactSize: UInt64 = ArtifactLimits().maximumArtifactBytes
    @Option(help: "Most artifacts one job may store (default 1000).")
    var maxArtifactsPerJob: Int = ArtifactLimits().maximumArtifactsPerJob
    @Option(help: "Seconds an artifact upload session may sit unwritten before it and its part file are removed (default 86400).")
    var artifactSessionTtl: Double = ArtifactLimits().sessionTimeToLive
    @Option(help: "Bytes of caches one branch scope may hold before the least recently used are evicted (default 10 GiB).")
    var cacheScopeLimit: UInt64 = ArtifactLimits().cacheScopeBytes
    @Option(help: "The branch whose caches every branch may read; each branch writes only its own (default main).")
    var defaultBranch: String = ArtifactLimits().defaultBranch
    @Option(help: "Days the logs of a finished pipeline are kept; 0 keeps them forever (default 90).")
    var retainLogsDays: Double = RetentionSettings().logAge / 86_400
    @Option(help: "Days the artifacts of a finished pipeline are kept; 0 keeps them forever (default 30). Kept pipelines (`gantry keep`) and what they promote stay.")
    var retainArtifactsDays: Double = RetentionSettings().artifactAge / 86_400
    @Option(help: "Bytes of artifacts stored before the oldest finished pipelines' go first; 0 for no budget (default 0).")
    var retainArtifactsBytes: UInt64 = RetentionSettings().artifactBytes
    @Option(help: "Days a cache not restored or saved is kept; 0 keeps caches until evicted by --cache-scope-limit (default 14).")
    var retainCachesDays: Double = RetentionSettings().cacheAge / 86_400
    @Option(help: ArgumentHelp("Seconds between retention runs (default 600).", visibility: .private))
    var retentionInterval: Double = 600
    /// Tests only: certificates whose renewal is due at once.
    @Option(help: ArgumentHelp("Seconds agent certificates are valid, overriding the days (tests).", visibility: .private))
    var agentCertificateSeconds: Int?

    func validate() throws {
        guard leaderTtl.isFinite, (1...600).contains(leaderTtl) else { throw ValidationError("--leader-ttl must be 1 to 600 seconds") }
        guard (0.05...3600).contains(heartbeatInterval) else {
            throw ValidationError("--heartbeat-interval must be 0.05 to 3600 seconds")
        }
        if let leaseTtl, leaseTtl > 86_400 { throw ValidationError("--lease-ttl must be at most 86400 seconds") }
        if let leaseTtl, leaseTtl <= heartbeatInterval {
            throw ValidationError("--lease-ttl must be longer than --heartbeat-interval")
        }
        for (value, flag) in [
            (maxAgentConnections, "--max-agent-connections"), (maxConnectionsPerAddress, "--max-connections-per-address"),
            (maxHandshakes, "--max-handshakes"), (maxHandshakesPerAddress, "--max-handshakes-per-address"),
        ] where !(1...1_000_000).contains(value) {
            throw ValidationError("\(flag) must be 1 to 1000000")
        }
        guard (0.1...3600).contains(httpIdleTimeout) else {
            throw ValidationError("--http-idle-timeout must be 0.1 to 3600 seconds")
        }
        guard (0.1...300).contains(handshakeTimeout) else {
            throw ValidationError("--handshake-timeout must be 0.1 to 300 seconds")
        }
        _ = try address(listen, "--listen")
        _ = try address(http, "--http")
        guard (1...825).contains(agentCertificateDays) else {
            throw ValidationError("--agent-certificate-days must be 1 to 825")
        }
        if let agentCertificateSeconds, !(60...(825 * 86_400)).contains(agentCertificateSeconds) {
            throw ValidationError("--agent-certificate-seconds must be 60 to \(825 * 86_400)")
        }
        for key in trustedLabelKey {
            if let problem = LabelSet.keyProblem(key) { throw ValidationError("--trusted-label-key '\(key)': \(problem)") }
        }
        _ = try httpTransport()
        guard maxArtifactSize >= 1 else { throw ValidationError("--max-artifact-size must be at least 1 byte") }
        guard (1...1_000_000).contains(maxArtifactsPerJob) else { throw ValidationError("--max-artifacts-per-job must be 1 to 1000000") }
        guard (60...(30 * 86_400)).contains(artifactSessionTtl) else {
            throw ValidationError("--artifact-session-ttl must be 60 to \(30 * 86_400) seconds")
        }
        guard cacheScopeLimit >= 1 else { throw ValidationError("--cache-scope-limit must be at least 1 byte") }
        guard !defaultBranch.isEmpty, defaultBranch.utf8.count <= 1024,
            !defaultBranch.unicodeScalars.contains(where: { $0.value < 0x20 || $0.value == 0x7F })
        else { throw ValidationError("--default-branch must be 1-1024 bytes without control characters") }
        if let apiUrl, !(apiUrl.hasPrefix("http://") || apiUrl.hasPrefix("https://")) || apiUrl.utf8.count > 2048
            || apiUrl.contains(where: { $0.isWhitespace })
        {
            throw ValidationError("--api-url must be an http:// or https:// URL of at most 2048 bytes, without spaces")
        }
    }

    /// The API's transport from the four flags; contradictions are refused here.
    func httpTransport() throws -> APITransport {
        if (httpTlsCertificate == nil) != (httpTlsKey == nil) {
            throw ValidationError("--http-tls-certificate and --http-tls-key go together")
        }
        if httpTlsCertificate != nil, !httpTls { throw ValidationError("--http-tls-certificate needs --http-tls") }
        if httpTls, httpInsecure { throw ValidationError("--http-insecure is for plain HTTP; drop it with --http-tls") }
        guard httpTls else { return .plain(allowedOffLoopback: httpInsecure) }
        if let httpTlsCertificate, let httpTlsKey { return .operatorCertificate(chain: httpTlsCertificate, key: httpTlsKey) }
        return .coordinatorCertificate
    }

    func run() async throws {
        let logger = makeLogger(level: logLevel)
        let stateDirectory = CoordinatorStateDirectory(path: state)
        guard stateDirectory.isInitialized else {
            throw ValidationError("\(state) is not initialized: run `gantry-coordinator init --state \(state)` first")
        }
        let agents = try address(listen, "--listen")
        let api = try address(http, "--http")
        let interval = Duration.milliseconds(Int(heartbeatInterval * 1000))
        var options = CoordinatorServer.Options(
            state: stateDirectory, agentHost: agents.host, agentPort: agents.port, httpHost: api.host, httpPort: api.port,
            core: .init(heartbeatInterval: interval, leaseTTL: leaseTtl.map { .milliseconds(Int($0 * 1000)) }),
            agentLimits: .init(
                connections: .init(
                    maximumConnections: maxAgentConnections, maximumPerAddress: maxConnectionsPerAddress,
                    maximumUnauthenticated: maxHandshakes, maximumUnauthenticatedPerAddress: maxHandshakesPerAddress),
                handshakeTimeout: .milliseconds(Int64(handshakeTimeout * 1000)),
                firstFrameTimeout: .milliseconds(Int64(handshakeTimeout * 1000))))
        options.httpIdleTimeout = .milliseconds(Int64(httpIdleTimeout * 1000))
        let store = try StoreOpener.open(stateDirectory, database: database, logger: logger)
        options.openStore = { _ in store }
        options.trust = TrustPolicy(trustedKeys: Set(trustedLabelKey))
        options.allowUntrustedEnvironmentSteps = allowUntrustedEnvironmentSteps
        options.gitAllowFileURLs = gitAllowFileUrls
        options.notificationAllowPrivate = notificationAllowPrivate
        if let environments {
            // Bounded like a pipeline file: it is the operator's, but a typo should not
            // make the coordinator read a huge file.
            guard let data = FileManager.default.contents(atPath: environments), data.count <= 1024 * 1024 else {
                throw ValidationError("--environments: cannot read \(environments) (or it is over 1 MiB)")
            }
            do {
                options.core.environments = try EnvironmentRules.parse(String(decoding: data, as: UTF8.self), file: environments)
            } catch {
                throw ValidationError("--environments: \(error)")
            }
        }
        options.agentCertificateValidity = TimeInterval(agentCertificateSeconds ?? agentCertificateDays * 86_400)
        options.httpTransport = try httpTransport()
        options.apiURL = apiUrl
        options.dashboard = noDashboard ? nil : Dashboard.install
        options.artifactLimits.maximumArtifactBytes = maxArtifactSize
        options.artifactLimits.maximumArtifactsPerJob = maxArtifactsPerJob
        options.artifactLimits.sessionTimeToLive = artifactSessionTtl
        options.artifactLimits.cacheScopeBytes = cacheScopeLimit
        options.artifactLimits.defaultBranch = defaultBranch
        options.retention.logAge = try RetentionSettings.age(days: retainLogsDays, option: "retain-logs-days")
        options.retention.artifactAge = try RetentionSettings.age(days: retainArtifactsDays, option: "retain-artifacts-days")
        options.retention.artifactBytes = retainArtifactsBytes
        options.retention.cacheAge = try RetentionSettings.age(days: retainCachesDays, option: "retain-caches-days")
        guard retentionInterval.isFinite, (1...86_400).contains(retentionInterval) else {
            throw ValidationError("--retention-interval must be 1 to 86400 seconds")
        }
        options.retention.interval = .milliseconds(Int64(retentionInterval * 1000))
        let announce: @Sendable (String, String) -> Void = { agents, http in
            // One machine-readable line on stdout, so scripts and tests can use port 0.
            FileHandle.standardOutput.write(Data("gantry-coordinator listening agents=\(agents) http=\(http)\n".utf8))
        }
        guard let shared = store as? PostgresStore else {
            try await CoordinatorServer(options: options, logger: logger).run(onListening: announce)
            return
        }
        // On PostgreSQL every coordinator is a member of a cluster, alone or not: it leads
        // once it holds the lease, and relays to the leader until then.
        let settings = ClusterMember.Settings(
            holder: ClusterMember.Settings.defaultHolder(), advertisedHost: try clusterHost(agents: agents),
            ttl: .milliseconds(Int64(leaderTtl * 1000)))
        logger.info("using PostgreSQL; joining the coordinators that share it", metadata: ["database": "\(shared.location.redacted)", "holder": "\(settings.holder)"])
        try await ClusterMember(options: options, settings: settings, leadership: shared, logger: logger).run(onListening: announce)
    }
}

/// A listen or advertised address (port 0: pick a free one), by the one parser
/// (`HostPort`), as a command-line error.
func address(_ text: String, _ flag: String) throws -> HostPort {
    do {
        return try HostPort(parsing: text, allowingPortZero: true)
    } catch {
        throw ValidationError("\(flag): \(error)")
    }
}

extension Logger.Level: @retroactive ExpressibleByArgument {}

func makeLogger(level: Logger.Level) -> Logger {
    LoggingSystem.bootstrap { label in
        var handler = StreamLogHandler.standardError(label: label)
        handler.logLevel = level
        return handler
    }
    return Logger(label: "gantry-coordinator")
}
