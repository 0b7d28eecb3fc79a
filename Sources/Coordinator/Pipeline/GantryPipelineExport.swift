/// The pipeline format (parser, definition, limits, errors) lives in its own target,
/// `GantryPipeline`, so the fuzzer and its tests build it without GRDB or Hummingbird.
/// Re-exporting it keeps `PipelineParser`, `RetryRule` and `PipelineError` visible to every
/// coordinator file, and to the coordinator's clients, as they were before the move.
@_exported import GantryPipeline
