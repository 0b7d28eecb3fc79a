/// Every store the coordinator's rooms use, as one back end provides them: `SQLiteStore`
/// (embedded, one coordinator) or `PostgresStore` (GantryPostgresStore, shared by several).
/// `CoordinatorServer` opens one through `Options.openStore` and hands each room the part
/// it needs, so the core and the rooms never name a back end.
public typealias GantryStore = CoordinatorStore & IdentityStore & SecretStore & AuditStore & EnrollmentStore
    & MetaDataStore & RetentionStore & ArtifactStore & ProjectStore & ScheduleStore & NotificationStore
    & DeploymentStore & JobListingStore & PipelineListingStore
