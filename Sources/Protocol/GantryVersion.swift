/// The one version string of this build, printed by `gantry --version`. Kept in
/// GantryProtocol so the coordinator and the agent can report the same one.
public enum GantryVersion {
    public static let string = "0.9.0-dev"
}
