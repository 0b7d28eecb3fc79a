import Foundation
import Logging
import ServiceLifecycle

/// The leader's side of the lease: renews it every third of its TTL while the core runs,
/// and throws `LeadershipLost` (ending the service group, and the process) once the
/// database says another coordinator holds it or the lease ran out before a renewal got
/// through. A failed renewal is retried at the next tick: the database restarting for a
/// few seconds costs nothing while the TTL lasts. On a graceful stop it releases the lease
/// last, after the core stopped, so a standby takes over at once.
public struct LeadershipKeeper: Service {
    let store: any LeadershipStore
    let claim: LeadershipClaim
    let epoch: Int64
    let logger: Logger

    public init(store: any LeadershipStore, claim: LeadershipClaim, epoch: Int64, logger: Logger) {
        self.store = store
        self.claim = claim
        self.epoch = epoch
        self.logger = logger
    }

    public func run() async throws {
        let interval = claim.ttl / 3
        var lastRenewal = ContinuousClock.now
        while !Task.isShuttingDownGracefully && !Task.isCancelled {
            try? await cancelWhenGracefulShutdown { try await Task.sleep(for: interval) }
            guard !Task.isShuttingDownGracefully && !Task.isCancelled else { break }
            do {
                let record = try store.claimLeadership(claim)
                guard record.holder == claim.holder, record.epoch == epoch else {
                    throw LeadershipLost("the lease passed to \(record.holder) (epoch \(record.epoch)); stopping so this coordinator restarts as a standby")
                }
                lastRenewal = .now
            } catch let lost as LeadershipLost {
                logger.critical("\(lost)")
                throw lost
            } catch {
                logger.warning("cannot renew the leader lease; retrying", metadata: ["error": "\(error)"])
                if ContinuousClock.now - lastRenewal > claim.ttl {
                    let lost = LeadershipLost("the leader lease expired before a renewal got through; stopping so this coordinator restarts as a standby")
                    logger.critical("\(lost)")
                    throw lost
                }
            }
        }
        store.fenceCommits(nil)
        do {
            try store.releaseLeadership(holder: claim.holder)
        } catch {
            logger.warning("cannot release the leader lease; standbys take over when it expires", metadata: ["error": "\(error)"])
        }
    }
}
