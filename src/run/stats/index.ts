export { Accumulator } from "./accumulator.js";
export { IntervalCollector } from "./collector.js";
export { columns, type Figures, figuresOf, type KindFigures, percentileName, row } from "./figures.js";
export { BASE_US, BUCKETS, bucketHigh, bucketOf, FACTOR, percentiles } from "./histogram.js";
export { checkReport, LATE_INTERVALS, Merger } from "./merger.js";
export { CsvReporter, createReporters, JsonReporter, StdoutReporter, type TextOut } from "./reporters.js";
export * from "./types.js";
