/**
 * Fault matrix, OpenAI API door, `stream: false`: the cells of fault-matrix-openai.test.ts (whose tables
 * hold here: the json column) answered as one `chat.completion` — so an error is always a status, also
 * when part of the answer had come before the failure: 503 `backend_unavailable` for a model server that
 * could not answer (`backend_unavailable`, `backend_timeout`, `backend_disconnected`,
 * `stream_deadline_exceeded`), 500 `server_error` for `backend_protocol_error`; classify cells answer 200.
 *
 * | stage    | runs?                                                                                         |
 * |----------|-----------------------------------------------------------------------------------------------|
 * | classify | yes                                                                                           |
 * | route    | yes                                                                                           |
 * | react    | yes                                                                                           |
 * | tools    | no: a tool fails before anything is streamed, so the json answer is the streamed cells' status (500 `tool_failed`/`tool_timeout`), cell for cell |
 */
import { describeOpenAiMatrix } from './helpers/openai-door.js';

describeOpenAiMatrix('json', ['classify', 'route', 'react']);
