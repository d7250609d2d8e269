/**
 * Fault matrix, OpenAI API door: every backend fault at every job stage, as `POST /v1/chat/completions`
 * with `model: "auto"` over undici, streamed (`stream: true`) here and as one JSON answer in
 * fault-matrix-openai-json.test.ts (the door's code: helpers/openai-door.ts). The job endings
 * are those of fault-matrix-ws.test.ts (its table and notes hold here too); what this door answers
 * for them is docs/http.md's:
 *
 * | job ending                                  | stream: true                                   | stream: false (json)     |
 * |---------------------------------------------|------------------------------------------------|--------------------------|
 * | done                                        | 200 SSE, the answer, `data: [DONE]`            | 200 `chat.completion`    |
 * | error, nothing streamed, a backend reason¹  | 503 `backend_unavailable` + `error_reason`     | same                     |
 * | error, nothing streamed, another reason²    | 500 `server_error` + `error_reason`            | same                     |
 * | error after the first chunk                 | 200 SSE, one error chunk (type as above), no `[DONE]` | status as above  |
 *
 * ¹ `backend_unavailable`, `backend_timeout`, `backend_disconnected`, `stream_deadline_exceeded`: the model
 *   server could not answer. ² `backend_protocol_error`, `tool_failed`, `tool_timeout`.
 *
 * | stage ↓ fault → | refused | 5xx | hang before headers | stall | dropped | malformed | slow drip | restarted |
 * |-----------------|---------|-----|---------------------|-------|---------|-----------|-----------|-----------|
 * | classify        | 200 answer (the reasoner; malformed: the classifier) — both variants                          |
 * | route, react    | 503 | 503 | 503 | chunk / 503 | chunk / 503 | chunk / 500 | chunk / 503 | chunk / 503 |
 * | tools, stream   | 500 `tool_failed` | 500 | 500 `tool_timeout` | 500 `tool_timeout` | 500 | 500 | 500 `tool_timeout` | 500 |
 * | tools, json     | not run: a tool fails before anything is streamed, so the json answer is the streamed one's status, cell for cell |
 *
 * "chunk / 503": streamed, the error chunk (type `backend_unavailable`); json, the status. Route and react
 * cells that time out before headers (hang) are 503 `backend_timeout`; stall and slow drip end
 * `backend_timeout` and `stream_deadline_exceeded`; dropped and restarted `backend_disconnected`.
 *
 * After each cell: slots free, the next completion answers, /healthz answers, no unhandled rejection.
 */
import { STAGES } from './helpers/fault-matrix.js';
import { describeOpenAiMatrix } from './helpers/openai-door.js';

describeOpenAiMatrix('stream', STAGES);
