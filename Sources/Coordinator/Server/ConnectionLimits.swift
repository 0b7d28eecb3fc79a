#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// How many agent connections the coordinator holds, in total and per remote address,
/// split by whether the peer has completed the handshake.
///
/// A pure value type: the listener asks `admit` when a TCP connection arrives (before TLS
/// allocates anything), reports `authenticated` once the core welcomed the peer, and
/// `closed` when the channel closes. Each connection has its own record, so those reports
/// are idempotent and may arrive in any order (a close can race the handshake).
///
/// Anonymous peers get a much smaller share than enrolled agents, and when that share is
/// full the *oldest* anonymous connection is evicted to admit the new one, rather than the
/// new one refused: a genuine agent finishes its handshake in milliseconds, so an
/// attacker holding every anonymous slot from many addresses only ever evicts its own
/// connections and cannot lock agents out. IPv6 peers are counted per /64, the block one
/// host usually holds.
public struct ConnectionLimits: Sendable {
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

    public typealias ConnectionID = UInt64

    public enum Admission: Sendable, Equatable {
        /// Admitted as `id`; close `evicting` (the oldest anonymous connection) to make room.
        case admitted(ConnectionID, evicting: ConnectionID?)
        case refused(String)
    }

    struct Count: Sendable, Equatable {
        var total = 0
        var unauthenticated = 0
    }

    struct Record: Sendable {
        var address: String
        var authenticated: Bool
    }

    public let configuration: Configuration
    private var total = Count()
    private var byAddress: [String: Count] = [:]
    private var records: [ConnectionID: Record] = [:]
    /// Anonymous connections, oldest first; entries that have since authenticated or
    /// closed are skipped and compacted away.
    private var anonymousOrder: [ConnectionID] = []
    private var anonymousHead = 0
    private var nextID: ConnectionID = 1

    public init(configuration: Configuration = .init()) {
        self.configuration = configuration
    }

    public var connections: Int { total.total }
    public var unauthenticatedConnections: Int { total.unauthenticated }
    public var addresses: Int { byAddress.count }

    /// A new, unauthenticated connection from `address` (an IP address as text).
    public mutating func admit(address rawAddress: String) -> Admission {
        let address = Self.key(rawAddress)
        let here = byAddress[address] ?? Count()
        if total.total >= configuration.maximumConnections && total.unauthenticated == 0 {
            return .refused("the coordinator holds its maximum of \(configuration.maximumConnections) agent connections")
        }
        if here.total >= configuration.maximumPerAddress {
            return .refused("\(address) already holds \(configuration.maximumPerAddress) connections")
        }
        if here.unauthenticated >= configuration.maximumUnauthenticatedPerAddress {
            return .refused("\(address) already has \(configuration.maximumUnauthenticatedPerAddress) connections in their handshake")
        }
        var evicting: ConnectionID?
        if total.unauthenticated >= configuration.maximumUnauthenticated || total.total >= configuration.maximumConnections {
            evicting = oldestAnonymous()
            guard let victim = evicting else { return .refused("no connection can be evicted") }
            closed(victim)
        }
        let id = nextID
        nextID += 1
        records[id] = Record(address: address, authenticated: false)
        anonymousOrder.append(id)
        compact()
        total.total += 1
        total.unauthenticated += 1
        byAddress[address, default: Count()].total += 1
        byAddress[address, default: Count()].unauthenticated += 1
        return .admitted(id, evicting: evicting)
    }

    /// Connection `id` completed its handshake. Does nothing if it already closed.
    public mutating func authenticated(_ id: ConnectionID) {
        guard var record = records[id], !record.authenticated else { return }
        record.authenticated = true
        records[id] = record
        total.unauthenticated -= 1
        byAddress[record.address]?.unauthenticated -= 1
    }

    /// Connection `id` closed (or was evicted). Does nothing the second time.
    public mutating func closed(_ id: ConnectionID) {
        guard let record = records.removeValue(forKey: id) else { return }
        total.total -= 1
        var here = byAddress[record.address] ?? Count()
        here.total -= 1
        if !record.authenticated {
            total.unauthenticated -= 1
            here.unauthenticated -= 1
        }
        byAddress[record.address] = here.total <= 0 ? nil : here
    }

    private mutating func oldestAnonymous() -> ConnectionID? {
        while anonymousHead < anonymousOrder.count {
            let id = anonymousOrder[anonymousHead]
            anonymousHead += 1
            if let record = records[id], !record.authenticated {
                compact()
                return id
            }
        }
        compact()
        return nil
    }

    /// Drops ids that are no longer anonymous once they dominate the list, so it stays
    /// proportional to the anonymous connections (amortized O(1) per admission).
    private mutating func compact() {
        let live = anonymousOrder.count - anonymousHead
        guard live > 2 * total.unauthenticated + 1024 else { return }
        anonymousOrder = anonymousOrder[anonymousHead...].filter { records[$0]?.authenticated == false }
        anonymousHead = 0
    }

    /// The unit an address is counted in: the address itself for IPv4, its /64 for IPv6.
    static func key(_ address: String) -> String {
        guard address.contains(":") else { return address }
        var bytes = [UInt8](repeating: 0, count: 16)
        guard inet_pton(AF_INET6, address, &bytes) == 1 else { return address }
        if bytes[0..<10].allSatisfy({ $0 == 0 }) && bytes[10] == 0xFF && bytes[11] == 0xFF {
            return bytes[12..<16].map(String.init).joined(separator: ".")  // IPv4-mapped
        }
        var groups: [String] = []
        for index in stride(from: 0, to: 8, by: 2) {
            groups.append(String(UInt16(bytes[index]) << 8 | UInt16(bytes[index + 1]), radix: 16))
        }
        return groups.joined(separator: ":") + "::/64"
    }
}
