import ArgumentParser
import GantryCoordinator

/// `gantry-coordinator rotate-key`: a new secrets key, every secret re-sealed under it.
///
/// Offline: it refuses while `serve` runs on the same state directory, since that process
/// holds the old key and would go on sealing under it. Stop the coordinator, rotate, start
/// it again (agents reconnect and resume their jobs). Safe to run again after a crash: it
/// finishes the interrupted rotation with the same new key.
struct RotateKey: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "rotate-key",
        abstract: "Re-encrypt every secret under a new key (stop `serve` first).")

    @Option(help: "State directory created by `init`.") var state: String

    func run() throws {
        let directory = CoordinatorStateDirectory(path: state)
        let store = try StoreOpener.open(directory)
        let result = try SecretKeyRotation.rotate(state: directory, store: store, projects: store)
        recordHostAction(
            store, action: "secrets.rotate_key", object: "secrets-key:\(result.newKeyID)",
            detail: ["previous_key": result.previousKeyID, "resealed": String(result.resealed)])
        print(
            "Re-encrypted \(result.resealed) secret(s): key \(result.previousKeyID) replaced by \(result.newKeyID) "
                + "in \(directory.secretsKey). Back up the new key file; the old one no longer opens anything.")
    }
}
