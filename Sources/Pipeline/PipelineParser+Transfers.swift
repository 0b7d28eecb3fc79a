import GantryTransferRules
import Yams

/// `artifacts:`, `artifacts_when:`, `download:` and `cache:` (docs/pipeline.md, "Artifacts
/// and caches"). Every glob, path and key template is checked here with the rules the
/// agent applies (`GantryTransferRules`), so a pipeline the coordinator accepts never
/// fails on the agent for its syntax.
extension PipelineParser {
    /// The keys this file parses, for `stepKeys`.
    static let transferStepKeys: Set<String> = ["artifacts", "artifact_paths", "artifacts_when", "download", "cache"]

    /// One transfer key of a step into `transfers`; `nodes` keeps where each `download:`
    /// step is written, for the check that it names a step of the pipeline.
    func transferField(
        _ field: String, keyNode: Node, value: Node, into transfers: inout StepTransfers, nodes: inout [Node]
    ) throws(PipelineError) {
        switch field {
        case "artifacts", "artifact_paths":
            guard transfers.artifacts.isEmpty else {
                throw error(keyNode, "`artifacts` and `artifact_paths` are the same key: write one of them")
            }
            transfers.artifacts = try artifactGlobs(value, what: field)
        case "artifacts_when":
            switch value.scalar?.string {
            case "on_success": transfers.artifactsAlways = false
            case "always": transfers.artifactsAlways = true
            default:
                throw error(value, "`artifacts_when` must be `on_success` or `always`, found \(describe(value))")
            }
        case "download":
            (transfers.downloads, nodes) = try downloads(value)
        default:
            transfers.cache = try cacheRule(value)
        }
    }

    /// A list of globs, or one string.
    private func artifactGlobs(_ value: Node, what: String) throws(PipelineError) -> [String] {
        let globs = try stringList(value, what: what)
        guard !globs.isEmpty else { throw error(value, "`\(what)` is an empty list: remove it or name a file") }
        guard globs.count <= TransferLimits.maximumArtifactGlobs else {
            throw error(value, "`\(what)` has \(globs.count) globs; the limit is \(TransferLimits.maximumArtifactGlobs)")
        }
        let nodes = value.sequence ?? [value]
        for (glob, node) in zip(globs, nodes) { try checkGlob(glob, node, what: "`\(what)` glob") }
        return globs
    }

    private func checkGlob(_ text: String, _ node: Node, what: String) throws(PipelineError) {
        do {
            _ = try ArtifactGlob(text, what: what)
        } catch {
            throw self.error(node, error.message)
        }
    }

    /// `download: [{step: KEY, path: GLOB}]`.
    private func downloads(_ value: Node) throws(PipelineError) -> ([ArtifactDownloadRule], [Node]) {
        guard let sequence = value.sequence else {
            throw error(value, "`download` must be a list of `{step: KEY, path: GLOB}`, found \(describe(value))")
        }
        guard !sequence.isEmpty else { throw error(value, "`download` is an empty list: remove it or name a step") }
        guard sequence.count <= TransferLimits.maximumDownloads else {
            throw error(value, "`download` has \(sequence.count) entries; the limit is \(TransferLimits.maximumDownloads)")
        }
        var rules: [ArtifactDownloadRule] = []
        var nodes: [Node] = []
        for item in sequence {
            guard let mapping = item.mapping else {
                throw error(item, "each `download` entry must be `{step: KEY, path: GLOB}`, found \(describe(item))")
            }
            var step: String?
            var stepNode: Node?
            var path: String?
            for (keyNode, entry) in mapping {
                switch try scalarKey(keyNode) {
                case "step":
                    step = try stepKey(entry)
                    stepNode = entry
                case "path":
                    let text = try string(entry, what: "download.path")
                    try checkGlob(text, entry, what: "`download` path")
                    path = text
                case let other:
                    throw error(keyNode, "unknown `download` key `\(Self.excerpt(other))`: expected `step` and `path`")
                }
            }
            guard let step, let stepNode else { throw error(item, "a `download` entry needs `step: KEY`") }
            guard let path else { throw error(item, "a `download` entry needs `path: GLOB` (`\"**\"` for everything)") }
            rules.append(ArtifactDownloadRule(step: step, path: path))
            nodes.append(stepNode)
        }
        return (rules, nodes)
    }

    /// `cache: {key, paths, restore_keys}`.
    private func cacheRule(_ value: Node) throws(PipelineError) -> CacheRule {
        guard let mapping = value.mapping else {
            throw error(value, "`cache` must be a mapping `{key: KEY, paths: [PATH]}`, found \(describe(value))")
        }
        var key: String?
        var paths: [String]?
        var restoreKeys: [String] = []
        for (keyNode, entry) in mapping {
            switch try scalarKey(keyNode) {
            case "key":
                let text = try string(entry, what: "cache.key")
                try checkKeyTemplate(text, entry, what: "`cache.key`")
                key = text
            case "paths":
                let list = try stringList(entry, what: "cache.paths")
                guard !list.isEmpty else { throw error(entry, "`cache.paths` is an empty list: name what to cache") }
                guard list.count <= TransferLimits.maximumCachePaths else {
                    throw error(
                        entry, "`cache.paths` has \(list.count) paths; the limit is \(TransferLimits.maximumCachePaths)")
                }
                for (path, node) in zip(list, entry.sequence ?? [entry]) {
                    if let problem = TransferPath.problem(with: path, what: "`cache.paths` entry") {
                        throw error(node, problem)
                    }
                }
                paths = list
            case "restore_keys":
                let list = try stringList(entry, what: "cache.restore_keys")
                guard list.count <= TransferLimits.maximumRestoreKeys else {
                    throw error(
                        entry,
                        "`cache.restore_keys` has \(list.count) keys; the limit is \(TransferLimits.maximumRestoreKeys)")
                }
                for (restoreKey, node) in zip(list, entry.sequence ?? [entry]) {
                    try checkKeyTemplate(restoreKey, node, what: "`cache.restore_keys` entry")
                }
                restoreKeys = list
            case let other:
                throw error(
                    keyNode, "unknown `cache` key `\(Self.excerpt(other))`: expected `key`, `paths` and `restore_keys`")
            }
        }
        guard let key else { throw error(value, "`cache` needs a `key` (such as `deps-{{ checksum \"Package.resolved\" }}`)") }
        guard let paths else { throw error(value, "`cache` needs `paths`: the directories to save and restore") }
        return CacheRule(key: key, paths: paths, restoreKeys: restoreKeys)
    }

    private func checkKeyTemplate(_ text: String, _ node: Node, what: String) throws(PipelineError) {
        do {
            _ = try CacheKeyTemplate(text, what: what)
        } catch {
            throw self.error(node, error.message)
        }
    }

    /// Every `download:` names a step of this pipeline other than its own, or, when the
    /// pipeline promotes another (`promotes`), possibly a step of that one: the
    /// coordinator checks those against the promoted pipeline's steps.
    func checkDownloads(_ steps: [ParsedStep], keys: Set<String>, promotes: Bool) throws(PipelineError) {
        for parsed in steps {
            for (rule, node) in zip(parsed.step.transfers.downloads, parsed.downloadNodes) {
                if rule.step == parsed.step.key {
                    throw error(node, "step `\(rule.step)` downloads its own artifacts: name the step that uploads them")
                }
                guard keys.contains(rule.step) || promotes else {
                    throw error(
                        node,
                        "step `\(parsed.step.key)` downloads from `\(Self.excerpt(rule.step))`, which is not a step key "
                            + "(known: \(Self.list(steps.map(\.step.key)))); a pipeline that promotes another "
                            + "(`--from-pipeline`, `artifacts_from:`) may also name a step of that one")
                }
            }
        }
    }
}
