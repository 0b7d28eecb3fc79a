#if canImport(FoundationEssentials)
import FoundationEssentials
#else
import Foundation
#endif

/// When an agent asks for a new certificate: once `fraction` (two thirds) of its
/// certificate's validity has passed.
///
/// Two thirds of the default 30 days is day 20: an agent that is connected renews then,
/// and one that is offline for up to ten more days still reconnects with a valid
/// certificate and renews at once. A pure function of the dates, so the arithmetic is a
/// unit test (`RenewalScheduleTests`).
public struct RenewalSchedule: Sendable, Equatable {
    public static let defaultFraction = 2.0 / 3.0

    /// The share of the validity after which renewal is due, in (0, 1].
    public var fraction: Double

    public init(fraction: Double = RenewalSchedule.defaultFraction) {
        self.fraction = fraction.isFinite ? min(max(fraction, 0.01), 1) : Self.defaultFraction
    }

    /// The moment renewal becomes due for a certificate valid from `notBefore` to `notAfter`.
    public func dueDate(notBefore: Date, notAfter: Date) -> Date {
        let validity = max(notAfter.timeIntervalSince(notBefore), 0)
        return notBefore.addingTimeInterval(validity * fraction)
    }

    /// Whether a certificate valid from `notBefore` to `notAfter` should be renewed at `now`.
    /// An expired certificate is due too (the coordinator would not have accepted it, but
    /// a clock that jumped is no reason to stop trying).
    public func isDue(notBefore: Date, notAfter: Date, now: Date) -> Bool {
        now >= dueDate(notBefore: notBefore, notAfter: notAfter)
    }
}
