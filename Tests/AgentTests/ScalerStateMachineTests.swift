@testable import GantryAgent
import Testing

@Suite("Scaler state machine", .timeLimit(.minutes(1)))
struct ScalerStateMachineTests {
    let t0 = ContinuousClock.now

    func machine(min: Int = 0, max: Int = 4, cooldown: Duration = .seconds(10)) -> ScalerStateMachine {
        ScalerStateMachine(configuration: .init(minimum: min, maximum: max, cooldown: cooldown), now: t0)
    }

    @Test func holdsStillUntilTheCoordinatorHasSpoken() {
        var m = machine(min: 2)
        #expect(m.tick(now: t0 + .seconds(1)) == [])
        #expect(m.demandReceived(queued: 0, running: 0, agents: [:], now: t0) == [.start(slot: 1), .start(slot: 2)])
        m.disconnected()
        #expect(m.tick(now: t0 + .seconds(60)) == [])
    }

    @Test func scalesOutAtOnceClampedToTheMaximum() {
        var m = machine(max: 4)
        #expect(
            m.demandReceived(queued: 20, running: 0, agents: [:], now: t0)
                == [.start(slot: 1), .start(slot: 2), .start(slot: 3), .start(slot: 4)])
        #expect(m.target == 4 && m.liveSlots == 4)
        // Already at the maximum: more demand starts nothing.
        #expect(m.demandReceived(queued: 16, running: 4, agents: [:], now: t0) == [])
    }

    @Test func oneShotSlotsComeBackWhileTheTargetWantsThem() {
        var m = machine(max: 2, cooldown: .seconds(10))
        _ = m.demandReceived(queued: 3, running: 0, agents: [:], now: t0)
        // Slot 1's agent ran its job and exited: the queue still wants two slots.
        #expect(m.slotExited(1, success: true, now: t0 + .seconds(1)) == [.start(slot: 1)])
        // Demand gone, but within the cool-down the target holds: warm slots come back.
        _ = m.demandReceived(queued: 0, running: 1, agents: [2: .busy], now: t0 + .seconds(2))
        #expect(m.slotExited(2, success: true, now: t0 + .seconds(3)) == [.start(slot: 2)])
        // After the cool-down the target falls; an exit is no longer replaced.
        _ = m.demandReceived(queued: 0, running: 0, agents: [1: .busy, 2: .busy], now: t0 + .seconds(20))
        #expect(m.target == 0)
        #expect(m.slotExited(1, success: true, now: t0 + .seconds(21)) == [])
    }

    @Test func scaleInWaitsForTheCooldownAndDrainsOnlyIdleSlots() {
        var m = machine(max: 4, cooldown: .seconds(10))
        _ = m.demandReceived(queued: 4, running: 0, agents: [:], now: t0)
        let agents: [Int: ScalerStateMachine.AgentState] = [1: .busy, 2: .idle, 3: .idle, 4: .busy]
        #expect(m.demandReceived(queued: 0, running: 2, agents: agents, now: t0 + .seconds(1)) == [])
        #expect(m.tick(now: t0 + .seconds(5)) == [])
        // Cool-down over: two slots too many; only the idle ones are candidates.
        let actions = m.tick(now: t0 + .seconds(12))
        #expect(actions == [.drainIdle(requestID: 1, slots: [3, 2], count: 2)])
        // No second request while one is in flight.
        #expect(m.tick(now: t0 + .seconds(13)) == [])
        // The coordinator drained only slot 3 (slot 2 took a job meanwhile): only 3 stops.
        // The refused candidate is not asked about again until fresh demand arrives.
        #expect(m.drainAnswered(requestID: 1, drained: [3], now: t0 + .seconds(13)) == [.stop(slot: 3)])
        #expect(m.slots[3]?.phase == .draining && m.liveSlots == 3)
    }

    @Test func drainedSlotsAreStopped() {
        var m = machine(max: 2, cooldown: .zero)
        _ = m.demandReceived(queued: 2, running: 0, agents: [:], now: t0)
        let actions = m.demandReceived(queued: 0, running: 0, agents: [1: .idle, 2: .idle], now: t0 + .seconds(1))
        #expect(actions == [.drainIdle(requestID: 1, slots: [2, 1], count: 2)])
        #expect(m.drainAnswered(requestID: 1, drained: [1, 2], now: t0 + .seconds(1)) == [.stop(slot: 1), .stop(slot: 2)])
        #expect(m.liveSlots == 0)
        // A stale answer (wrong request id) is ignored.
        #expect(m.drainAnswered(requestID: 7, drained: [1], now: t0 + .seconds(2)) == [])
        // Drained slots exit; nothing restarts.
        #expect(m.slotExited(1, success: true, now: t0 + .seconds(2)) == [])
        #expect(m.slotExited(2, success: true, now: t0 + .seconds(2)) == [])
        #expect(m.slots.isEmpty)
    }

    @Test func busySlotsAreNeverCandidates() {
        var m = machine(max: 3, cooldown: .zero)
        _ = m.demandReceived(queued: 3, running: 0, agents: [:], now: t0)
        #expect(m.demandReceived(queued: 0, running: 3, agents: [1: .busy, 2: .busy, 3: .busy], now: t0) == [])
        // Running jobs count as demand: nothing to drain while they run.
        #expect(m.target == 3)
        #expect(m.demandReceived(queued: 0, running: 1, agents: [1: .busy, 2: .busy, 3: .draining], now: t0) == [])
    }

    @Test func aDisconnectVoidsTheDrainInFlight() {
        var m = machine(max: 2, cooldown: .zero)
        _ = m.demandReceived(queued: 2, running: 0, agents: [:], now: t0)
        _ = m.demandReceived(queued: 0, running: 0, agents: [1: .idle, 2: .idle], now: t0)
        m.disconnected()
        #expect(m.drainAnswered(requestID: 1, drained: [1, 2], now: t0) == [])
        // Fresh demand after the reconnect asks again.
        #expect(m.demandReceived(queued: 0, running: 0, agents: [1: .idle, 2: .idle], now: t0) == [.drainIdle(requestID: 2, slots: [2, 1], count: 2)])
    }

    @Test func aSlotNumberHeldByAForeignConnectedAgentIsSkipped() {
        var m = machine(max: 3)
        // Slot 1's id belongs to a connected agent this scaler did not start (a killed
        // predecessor's): reusing the id would cut that agent off mid-job.
        #expect(m.demandReceived(queued: 2, running: 1, agents: [1: .busy], now: t0) == [.start(slot: 2), .start(slot: 3)])
    }

    @Test func aFailingAgentIsNotRespawnedInATightLoop() {
        var m = ScalerStateMachine(
            configuration: .init(minimum: 0, maximum: 1, cooldown: .seconds(10), crashBackoff: .seconds(5)), now: t0)
        _ = m.demandReceived(queued: 1, running: 0, agents: [:], now: t0)
        #expect(m.slotExited(1, success: false, now: t0 + .milliseconds(100)) == [])
        #expect(m.tick(now: t0 + .seconds(2)) == [])
        #expect(m.tick(now: t0 + .seconds(6)) == [.start(slot: 1)])
    }

    @Test func adoptedSlotsCountTowardTheTarget() {
        var m = machine(min: 2, max: 4)
        m.adopt([2, 9])
        #expect(m.slots.keys.sorted() == [2])
        #expect(m.demandReceived(queued: 0, running: 0, agents: [:], now: t0) == [.start(slot: 1)])
    }

    @Test func systemdListingIsParsed() {
        let listing = """
            gantry-agent@1.service loaded active running Gantry agent slot 1
            gantry-agent@12.service loaded activating start Gantry agent slot 12
            gantry-agent@x.service loaded active running bogus
            other@3.service loaded active running Other
            """
        #expect(SystemdSlotProvider.slots(inListing: listing, unitPrefix: "gantry-agent@") == [1, 12])
    }
}
