export * from "./chat-template.js";
export * from "./errors.js";
export type { Endpoint, GenerationLog, Job } from "./generation.js";
export * from "./metrics.js";
export * from "./params.js";
export * from "./server.js";
export * from "./sse.js";
