import Foundation
import GantryProtocol
import GantryServices
import Hummingbird
import HummingbirdCore
import HummingbirdTLS
import Logging
import NIOCore
import ServiceLifecycle
import Synchronization

/// Wires the coordinator together from a state directory: store, core, agent listener,
/// lease clock and HTTP API, run as one `ServiceGroup` that shuts down gracefully on the
/// first SIGTERM/SIGINT and is cancelled by a second (`TwoSignalServiceGroup`).
public struct CoordinatorServer: Sendable {
    public struct Options: Sendable {
        public var state: CoordinatorStateDirectory
        public var agentHost: String
        public var agentPort: Int
        public var httpHost: String
        public var httpPort: Int
        public var core: CoordinatorCore.Configuration
        public var agentLimits: AgentListener.Limits
        /// HTTP connections idle this long (including one whose request head is not
        /// complete by then) are closed.
        public var httpIdleTimeout: TimeAmount = .seconds(30)
        /// Opens the store: by default the SQLite file in the state directory. The
        /// executable passes `PostgresStore` for `--database postgres://…`; this target does
        /// not link postgres-nio.
        public var openStore: @Sendable (CoordinatorStateDirectory) throws -> any GantryStore = { state in
            try SQLiteStore(path: state.database)
        }
        /// Set by `ClusterMember` on the leader of several coordinators: renews the lease
        /// while the core runs and stops the process if it is lost.
        public var leadershipKeeper: LeadershipKeeper?
        /// Label keys an agent may claim only if its join token named them
        /// (`serve --trusted-label-key`).
        public var trust = TrustPolicy()
        /// Lets a step with `environment:` run on any agent (`serve
        /// --allow-untrusted-environment-steps`); by default it must select a trusted label.
        public var allowUntrustedEnvironmentSteps = false
        /// `serve --git-allow-file-urls`: scheduled builds may resolve branches of local
        /// repositories (`GitRemote`); off, as on agents.
        public var gitAllowFileURLs = false
        /// Validity of the agent certificates issued and renewed (`--agent-certificate-days`).
        public var agentCertificateValidity: TimeInterval = CertificateAuthority.defaultAgentCertificateValidity
        /// Plain HTTP (loopback only unless allowed) or TLS: see `APITransport`.
        public var httpTransport: APITransport = .plain(allowedOffLoopback: false)
        /// The API's URL as steps reach it (`serve --api-url`), sent in every lease as
        /// `api_url`; nil derives it once the API is bound (`JobTokens.Endpoint.derived`).
        public var apiURL: String?
        /// Artifact and cache limits, and the default branch whose caches others read
        /// (`serve --max-artifact-size`, `--cache-scope-limit`, `--default-branch`, …).
        public var artifactLimits = ArtifactLimits()
        /// How long logs, artifacts and caches are kept (`serve --retain-logs-days`, …;
        /// Retention/).
        public var retention = RetentionSettings()
        /// Adds the web dashboard's routes (GantryWeb's `Dashboard.install`) to the API's
        /// router; nil serves no dashboard. The coordinator's core does not link the web
        /// target, so its executable hands the dashboard in.
        public var dashboard: (@Sendable (Router<GantryRequestContext>, APIRouter.Dependencies, DashboardSettings) -> Void)?
        /// `serve --notification-allow-private`: outgoing webhooks may target loopback and
        /// private addresses (Notifications/NotificationURL); off by default.
        public var notificationAllowPrivate = false

        public init(
            state: CoordinatorStateDirectory, agentHost: String, agentPort: Int, httpHost: String, httpPort: Int,
            core: CoordinatorCore.Configuration, agentLimits: AgentListener.Limits = .init()
        ) {
            self.state = state
            self.agentHost = agentHost
            self.agentPort = agentPort
            self.httpHost = httpHost
            self.httpPort = httpPort
            self.core = core
            self.agentLimits = agentLimits
        }
    }

    public let options: Options
    public let logger: Logger

    public init(options: Options, logger: Logger) {
        self.options = options
        self.logger = logger
    }

    /// Runs until SIGTERM/SIGINT (a second one cancels a shutdown that hangs). `onListening`
    /// receives the bound agent and HTTP addresses
    /// (useful with port 0).
    public func run(onListening: @escaping @Sendable (_ agents: String, _ http: String) -> Void = { _, _ in }) async throws {
        let state = options.state
        // Refuse a transport that cannot start before opening anything.
        if let warning = try options.httpTransport.check(host: options.httpHost, port: options.httpPort) {
            logger.warning("\(warning)")
        }
        let apiTLS = try options.httpTransport.serverConfiguration(state: state)
        let store = try options.openStore(state)
        let core = try CoordinatorCore(store: store, configuration: options.core, logger: logger, secrets: try SecretVault.open(state: state, store: store, logger: logger))
        let authority = try state.loadAuthority()
        let tls = try GantryTLS.server(
            certificateChain: [
                try CertificateEncoding.readCertificate(pemFile: state.serverCertificate), authority.certificate,
            ],
            privateKey: try CertificateEncoding.readPrivateKey(pemFile: state.serverKey),
            ca: authority.certificate)
        let notifier = SystemdNotifier()
        let addresses = BoundAddresses { agents, http in
            notifier.notify("READY=1\nSTATUS=agents on \(agents), API on \(http)")
            onListening(agents, http)
        }
        let revocation = AgentRevocation(store: store, core: core)
        let audit = AuditLog(store: store, logger: logger)
        logger.info(
            "agents may claim these label keys only if their join token names them",
            metadata: [
                "trusted_label_keys": "\(options.trust.trustedKeys.sorted().joined(separator: ","))",
                "agent_certificate_days": "\(options.agentCertificateValidity / 86_400)",
            ])
        let listener = try AgentListener(
            host: options.agentHost, port: options.agentPort, core: core,
            enrollment: Enrollment(
                authority: authority, legacyJoinToken: try state.readToken(state.joinToken), store: store,
                certificateValidity: options.agentCertificateValidity),
            admission: HelloAdmission(store: store, policy: options.trust),
            renewal: CertificateRenewal(
                authority: authority, store: store, certificateValidity: options.agentCertificateValidity),
            revocation: revocation, tls: tls, limits: options.agentLimits, logger: logger, audit: audit,
            onBound: { addresses.set(agents: Self.format($0)) })
        try Authenticator.ensureBootstrapIdentity(in: store)
        let artifacts = try ArtifactService(state: state, store: store, limits: options.artifactLimits, logger: logger)
        let bootstrapToken = FileManager.default.fileExists(atPath: state.adminToken) ? try state.readToken(state.adminToken) : nil
        core.notificationInterest.update(from: try store.notificationEndpoints())
        var dependencies = APIRouter.Dependencies(
            core: core, authenticator: Authenticator(store: store, bootstrapToken: bootstrapToken), identities: store,
            audit: audit, revocation: revocation,
            deployPolicy: DeployPolicy(
                trust: options.trust, environmentStepsNeedTrustedAgents: !options.allowUntrustedEnvironmentSteps),
            artifacts: artifacts)
        if options.dashboard != nil { dependencies.sessions = WebSessions(secureCookies: options.httpTransport.isTLS) }
        dependencies.notificationAllowPrivate = options.notificationAllowPrivate
        let router = APIRouter.make(dependencies)
        options.dashboard?(router, dependencies, DashboardSettings(secureCookies: options.httpTransport.isTLS))
        let http = Application(
            router: router,
            // The idle timeout is also the header timeout: the HTTP decoder reports no
            // activity until a request head is complete, so a client that trickles its
            // headers (or opens a connection and sends nothing) is closed after it. A
            // response being streamed (a log follow) is never cut by it.
            server: try Self.httpServer(idleTimeout: options.httpIdleTimeout, tls: apiTLS),
            configuration: .init(address: .hostname(options.httpHost, port: options.httpPort), serverName: "gantry"),
            onServerRunning: { [options] channel in
                core.secrets.jobTokens.setEndpoint(Self.stepEndpoint(options, boundPort: channel.localAddress?.port))
                addresses.set(http: channel.localAddress.map(Self.format) ?? "?")
            },
            logger: logger)
        // The leader's lease keeper goes first, so it is shut down last: the lease is
        // released only once the core has stopped committing.
        let keeper: [ServiceGroupConfiguration.ServiceConfiguration] = options.leadershipKeeper.map {
            [.init(service: $0, successTerminationBehavior: .gracefullyShutdownGroup, failureTerminationBehavior: .cancelGroup)]
        } ?? []
        let group = TwoSignalServiceGroup(
            // Shut down in reverse order: the agent listener first (it closes agent
            // connections and ends log followers), so the HTTP server has no endless
            // request left to wait for.
            services: keeper + [
                .init(service: http), .init(service: LeaseClock(core: core)),
                .init(service: SystemdWatchdog(notifier: notifier, core: core)), .init(service: ArtifactSweeper(service: artifacts)),
                .init(
                    service: RetentionService(
                        collector: RetentionCollector(store: store, blobs: artifacts.blobs, settings: options.retention, logger: logger))),
                .init(
                    service: ScheduleService(
                        core: core, store: store, identities: store, audit: audit, allowFileURLs: options.gitAllowFileURLs,
                        logger: logger)),
                .init(
                    service: NotificationService(
                        store: store, core: core, allowPrivate: options.notificationAllowPrivate, logger: logger)),
                .init(service: listener),
            ],
            logger: logger)
        try await group.run()
    }

    /// HTTP/1.1, over TLS when `tls` is given. Hummingbird's TLS handler sits under the
    /// HTTP one, so the idle timeout covers a client that opens a connection and never
    /// completes its handshake as well.
    static func httpServer(idleTimeout: TimeAmount, tls: TLSConfiguration?) throws -> HTTPServerBuilder {
        let http = HTTPServerBuilder.http1(configuration: .init(idleTimeout: idleTimeout))
        guard let tls else { return http }
        return try .tls(http, tlsConfiguration: tls)
    }

    /// Where steps reach the API: `--api-url`, or derived from the bound address. Steps get
    /// the agent's copy of the coordinator's CA only when the API serves the coordinator's
    /// own certificate over https.
    static func stepEndpoint(_ options: Options, boundPort: Int?) -> JobTokens.Endpoint {
        let coordinatorCA = options.httpTransport == .coordinatorCertificate
        if let url = options.apiURL {
            return .init(url: url, usesCoordinatorCA: coordinatorCA && url.hasPrefix("https://"))
        }
        let advertised = (try? options.state.joinInfo().coordinator).flatMap { try? HostPort(parsing: $0, allowingPortZero: true) }
        let url = JobTokens.Endpoint.derived(
            boundHost: options.httpHost, port: boundPort ?? options.httpPort, tls: options.httpTransport.isTLS,
            advertisedHost: advertised?.host)
        return .init(url: url, usesCoordinatorCA: coordinatorCA)
    }

    static func format(_ address: SocketAddress) -> String {
        HostPort(host: address.ipAddress ?? "?", port: address.port ?? 0).description
    }
}

/// Reports both listening addresses once both are known.
final class BoundAddresses: Sendable {
    private let state = Mutex<(agents: String?, http: String?, reported: Bool)>((nil, nil, false))
    private let callback: @Sendable (String, String) -> Void

    init(_ callback: @escaping @Sendable (String, String) -> Void) {
        self.callback = callback
    }

    func set(agents: String? = nil, http: String? = nil) {
        let ready: (String, String)? = state.withLock { value in
            if let agents { value.agents = agents }
            if let http { value.http = http }
            guard !value.reported, let a = value.agents, let h = value.http else { return nil }
            value.reported = true
            return (a, h)
        }
        if let ready { callback(ready.0, ready.1) }
    }
}
