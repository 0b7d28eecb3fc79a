import Foundation

extension API {
    /// `POST /v1/projects`: a repository whose pushes start pipelines through a webhook.
    public struct CreateProject: Codable, Sendable, Equatable {
        public var name: String
        public var repository: String
        /// The pipeline file in the repository; `.gantry/pipeline.yml` when nil.
        public var pipelineFile: String?
        /// Branch patterns whose pushes start a build (shell globs, `*` also matching
        /// `/`); every branch when nil or empty.
        public var branches: [String]?
        /// Tag patterns whose pushes start a build; no tag when nil or empty.
        public var tags: [String]?
        /// A push to a branch cancels the unfinished builds its webhook started for that
        /// branch before.
        public var cancelSuperseded: Bool?
        /// The identity the project's pipelines are submitted as: its roles, at each push,
        /// decide what they may do (deploy, save the default branch's cache). Without one
        /// they are submitted as `project:NAME`, which holds no role: they build and test
        /// but deploy nothing.
        public var runAs: String?

        public init(
            name: String, repository: String, pipelineFile: String? = nil, branches: [String]? = nil, tags: [String]? = nil,
            cancelSuperseded: Bool? = nil, runAs: String? = nil
        ) {
            self.runAs = runAs
            self.cancelSuperseded = cancelSuperseded
            self.name = name
            self.repository = repository
            self.pipelineFile = pipelineFile
            self.branches = branches
            self.tags = tags
        }
    }

    /// A project as the API shows it. `webhookSecret` is in the answer to its creation
    /// only: the coordinator keeps it sealed and never shows it again.
    public struct Project: Codable, Sendable, Equatable {
        public var name: String
        public var repository: String
        public var pipelineFile: String
        public var branches: [String]
        public var tags: [String]
        public var cancelSuperseded: Bool
        public var runAs: String?
        public var createdBy: String
        public var createdAt: Date
        /// The path senders post to (`/v1/hooks/NAME`), on the coordinator's HTTP API.
        public var webhookPath: String
        public var webhookSecret: String?

        public init(
            name: String, repository: String, pipelineFile: String, branches: [String], tags: [String],
            cancelSuperseded: Bool = false, runAs: String? = nil, createdBy: String, createdAt: Date, webhookPath: String,
            webhookSecret: String? = nil
        ) {
            self.runAs = runAs
            self.cancelSuperseded = cancelSuperseded
            self.name = name
            self.repository = repository
            self.pipelineFile = pipelineFile
            self.branches = branches
            self.tags = tags
            self.createdBy = createdBy
            self.createdAt = createdAt
            self.webhookPath = webhookPath
            self.webhookSecret = webhookSecret
        }
    }

    public struct ProjectList: Codable, Sendable, Equatable {
        public var projects: [Project]
        /// Pass as `?cursor=` for the next page; nil on the last one.
        public var nextCursor: String?

        public init(projects: [Project], nextCursor: String? = nil) {
            self.projects = projects
            self.nextCursor = nextCursor
        }
    }

    /// What a delivery to `/v1/hooks/NAME` did: started a pipeline, found the delivery
    /// already handled (`duplicate`, with the pipeline it started then, if any), or
    /// started nothing and says why (an event that is not a push, a branch no pattern
    /// matches, a deleted branch).
    public struct WebhookResult: Codable, Sendable, Equatable {
        public var started: Bool
        public var duplicate: Bool
        public var pipelineId: String?
        public var reason: String?
        /// Earlier builds of the branch this one cancelled (`cancel_superseded`).
        public var cancelled: [String]?

        public init(
            started: Bool, duplicate: Bool = false, pipelineId: String? = nil, reason: String? = nil, cancelled: [String]? = nil
        ) {
            self.cancelled = cancelled
            self.started = started
            self.duplicate = duplicate
            self.pipelineId = pipelineId
            self.reason = reason
        }
    }
}

extension API {
    /// `POST /v1/projects/{name}/schedules`.
    public struct CreateSchedule: Codable, Sendable, Equatable {
        /// Five-field cron, UTC, or `@hourly`, `@daily`, `@weekly`, `@monthly`, `@yearly`.
        public var cron: String
        public var branch: String

        public init(cron: String, branch: String) {
            self.cron = cron
            self.branch = branch
        }
    }

    public struct Schedule: Codable, Sendable, Equatable {
        public var id: String
        public var project: String
        public var cron: String
        public var branch: String
        public var nextRunAt: Date
        public var createdBy: String
        public var createdAt: Date
        /// The most recent ticks, newest first.
        public var runs: [ScheduleRun]

        public init(
            id: String, project: String, cron: String, branch: String, nextRunAt: Date, createdBy: String, createdAt: Date,
            runs: [ScheduleRun]
        ) {
            self.id = id
            self.project = project
            self.cron = cron
            self.branch = branch
            self.nextRunAt = nextRunAt
            self.createdBy = createdBy
            self.createdAt = createdAt
            self.runs = runs
        }
    }

    /// One tick of a schedule: the pipeline it started, or why it started none.
    public struct ScheduleRun: Codable, Sendable, Equatable {
        public var tick: Date
        public var pipelineId: String?
        public var error: String?

        public init(tick: Date, pipelineId: String?, error: String?) {
            self.tick = tick
            self.pipelineId = pipelineId
            self.error = error
        }
    }

    public struct ScheduleList: Codable, Sendable, Equatable {
        public var schedules: [Schedule]

        public init(schedules: [Schedule]) {
            self.schedules = schedules
        }
    }
}
