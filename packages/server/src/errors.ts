/**
 * OpenAI-style errors: every failure a client sees is `{error: {message, type, param, code}}` with
 * an HTTP status that says whose fault it is. Engine errors (typed, with stable codes) map here.
 */
import { MarlinError } from "@marlin/core";

export interface ErrorBody {
  error: { message: string; type: string; param: string | null; code: string | null };
}

/** A request the server answers with an error status. */
export class ApiError extends MarlinError {
  readonly status: number;
  readonly type: string;
  readonly param: string | null;
  readonly apiCode: string | null;
  constructor(status: number, message: string, opts: { type?: string; param?: string; code?: string; cause?: unknown } = {}) {
    super("ERR_MARLIN_API", message, { cause: opts.cause });
    this.status = status;
    this.type = opts.type ?? (status >= 500 ? "server_error" : "invalid_request_error");
    this.param = opts.param ?? null;
    this.apiCode = opts.code ?? null;
  }

  get body(): ErrorBody {
    return { error: { message: this.message, type: this.type, param: this.param, code: this.apiCode } };
  }
}

/** A field of the request body is missing, of the wrong type or out of range (400). */
export function badParam(param: string, message: string, code = "invalid_value"): ApiError {
  return new ApiError(400, message, { param, code });
}

/** A field the engine has no implementation for (400, never silently ignored). */
export function unsupportedParam(param: string, why = "is not supported by this server"): ApiError {
  return new ApiError(400, `${param} ${why}`, { param, code: "unsupported_parameter" });
}

/** Fastify's own errors (body parsing, limits, media type) carry statusCode and a FST_ code. */
function fastifyError(e: { statusCode?: number; code?: string; message: string }): ApiError | undefined {
  const status = e.statusCode;
  if (typeof status !== "number" || status < 400 || status > 599) return undefined;
  const code =
    e.code === "FST_ERR_CTP_BODY_TOO_LARGE"
      ? "request_too_large"
      : e.code === "FST_ERR_CTP_INVALID_MEDIA_TYPE"
        ? "unsupported_media_type"
        : e.code === "FST_ERR_CTP_EMPTY_JSON_BODY" || e.code === "FST_ERR_CTP_INVALID_JSON_BODY" || e instanceof SyntaxError
          ? "invalid_json"
          : undefined;
  return new ApiError(status, e.message, { code });
}

/** Any thrown value as the error a client should see. */
export function toApiError(e: unknown): ApiError {
  if (e instanceof ApiError) return e;
  if (e instanceof MarlinError) {
    switch (e.code) {
      case "ERR_MARLIN_ENGINE_BUSY":
        return new ApiError(429, `the server is busy: ${e.message}; retry later`, { type: "rate_limit_error", code: "rate_limit_exceeded", cause: e });
      case "ERR_MARLIN_ENGINE_DEAD":
        return new ApiError(503, e.message, { type: "service_unavailable", code: "engine_dead", cause: e });
      case "ERR_MARLIN_REQUEST_REJECTED":
        return new ApiError(400, e.message, { param: "prompt", code: "context_length_exceeded", cause: e });
      case "ERR_MARLIN_INVALID_ARGUMENT":
        return new ApiError(400, e.message, { code: "invalid_value", cause: e });
      case "ERR_MARLIN_STREAM_RECLAIMED":
        return new ApiError(408, e.message, { type: "timeout_error", code: "stream_reclaimed", cause: e });
    }
  }
  if (e && typeof e === "object" && "statusCode" in e) {
    const f = fastifyError(e as { statusCode?: number; code?: string; message: string });
    if (f) return f;
  }
  return new ApiError(500, `internal error: ${e instanceof Error ? e.message : String(e)}`, { cause: e });
}
