/// How many agent connections the coordinator holds, in total and per remote address,
/// split by whether the peer has completed the handshake.
///
/// A pure value type: the listener asks `admit` when a TCP connection arrives (before TLS
/// allocates anything), reports `authenticated` once the core welcomed the peer, and
/// `closed` when the channel closes. Anonymous peers get a much smaller share than
/// enrolled agents, so a flood of idle or half-open connections cannot take the
/// descriptors that real agents and the HTTP API need.
public struct ConnectionLimits: Sendable, Equatable {
    public struct Configuration: Sendable, Equatable {
        /// All connections, authenticated or not. Keep below the descriptor limit, with
        /// room for the store and the HTTP API.
        public var maximumConnections: Int
        /// Connections from one address, authenticated or not (one build host runs a few
        /// agents and a scaler; a NAT gateway in front of a fleet needs this raised).
        public var maximumPerAddress: Int
        /// Connections still in the TLS handshake or waiting for Hello/EnrollRequest.
        public var maximumUnauthenticated: Int
        public var maximumUnauthenticatedPerAddress: Int

        public init(
            maximumConnections: Int = 4096, maximumPerAddress: Int = 512, maximumUnauthenticated: Int = 256,
            maximumUnauthenticatedPerAddress: Int = 32
        ) {
            self.maximumConnections = maximumConnections
            self.maximumPerAddress = maximumPerAddress
            self.maximumUnauthenticated = maximumUnauthenticated
            self.maximumUnauthenticatedPerAddress = maximumUnauthenticatedPerAddress
        }
    }

    public enum Admission: Sendable, Equatable {
        case admitted
        case refused(String)
    }

    struct Count: Sendable, Equatable {
        var total = 0
        var unauthenticated = 0
    }

    public let configuration: Configuration
    private(set) var total = Count()
    private(set) var byAddress: [String: Count] = [:]

    public init(configuration: Configuration = .init()) {
        self.configuration = configuration
    }

    public var connections: Int { total.total }
    public var unauthenticatedConnections: Int { total.unauthenticated }
    public var addresses: Int { byAddress.count }

    /// A new, unauthenticated connection from `address`.
    public mutating func admit(address: String) -> Admission {
        let here = byAddress[address] ?? Count()
        if total.total >= configuration.maximumConnections {
            return .refused("the coordinator holds its maximum of \(configuration.maximumConnections) agent connections")
        }
        if here.total >= configuration.maximumPerAddress {
            return .refused("\(address) already holds \(configuration.maximumPerAddress) connections")
        }
        if total.unauthenticated >= configuration.maximumUnauthenticated {
            return .refused("\(configuration.maximumUnauthenticated) connections are already in their handshake")
        }
        if here.unauthenticated >= configuration.maximumUnauthenticatedPerAddress {
            return .refused("\(address) already has \(configuration.maximumUnauthenticatedPerAddress) connections in their handshake")
        }
        total.total += 1
        total.unauthenticated += 1
        byAddress[address, default: Count()].total += 1
        byAddress[address, default: Count()].unauthenticated += 1
        return .admitted
    }

    /// An admitted connection from `address` completed its handshake.
    public mutating func authenticated(address: String) {
        guard var here = byAddress[address], here.unauthenticated > 0 else { return }
        here.unauthenticated -= 1
        total.unauthenticated -= 1
        byAddress[address] = here
    }

    /// An admitted connection from `address` closed; `wasAuthenticated` says which count
    /// it was in.
    public mutating func closed(address: String, wasAuthenticated: Bool) {
        guard var here = byAddress[address], here.total > 0 else { return }
        here.total -= 1
        total.total -= 1
        if !wasAuthenticated, here.unauthenticated > 0 {
            here.unauthenticated -= 1
            total.unauthenticated -= 1
        }
        byAddress[address] = here.total == 0 ? nil : here
    }
}
