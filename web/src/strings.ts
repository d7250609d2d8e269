/** Every sentence the page shows, in English and Korean. */
export interface Strings {
  lang: 'en' | 'ko';
  title: string;
  connecting: string;
  connected: string;
  reconnecting: string;
  messageLabel: string;
  placeholder: string;
  hint: string;
  send: string;
  cancel: string;
  clear: string;
  empty: string;
  you: string;
  assistant: string;
  statusTitle: string;
  statusWaiting: string;
  jobs: (active: number, pending: number) => string;
  queue: (waiting: number, running: number) => string;
  states: Record<string, string>;
  loads: Record<string, string>;
  queued: (position: number | null) => string;
  sending: string;
  cancelled: string;
  sources: string;
  confirmQuestion: string;
  yes: string;
  no: string;
  /** What the Yes/No buttons send: words the gateway's pre-route takes as the user's own answer. */
  yesWord: string;
  noWord: string;
  draftFields: Record<string, string>;
  tokenTitle: string;
  tokenNeeded: string;
  tokenRefused: string;
  tokenLabel: string;
  tokenSubmit: string;
  reasons: Record<string, string>;
  /** A job's error with a reason not listed above. */
  failed: string;
  codes: Record<string, string>;
  lost: string;
}

const en: Strings = {
  lang: 'en',
  title: 'Switchboard',
  connecting: 'Connecting…',
  connected: 'Connected',
  reconnecting: 'Connection lost, reconnecting…',
  messageLabel: 'Message',
  placeholder: 'Write a message…',
  hint: 'Enter sends, Shift+Enter starts a new line.',
  send: 'Send',
  cancel: 'Cancel',
  clear: 'Clear chat',
  empty: 'Ask anything. Your conversation stays in this browser until you clear it.',
  you: 'You',
  assistant: 'Assistant',
  statusTitle: 'Models',
  statusWaiting: 'Waiting for the status…',
  jobs: (active, pending) => `Jobs: ${active} running, ${pending} waiting`,
  queue: (waiting, running) => `${running} running, ${waiting} waiting`,
  states: { up: 'up', down: 'down', unknown: 'not checked yet' },
  loads: { idle: 'idle', normal: 'normal', busy: 'busy', very_busy: 'very busy' },
  queued: (position) => (position === null ? 'Waiting in line…' : `Waiting in line (position ${position})…`),
  sending: 'Sending…',
  cancelled: 'Cancelled.',
  sources: 'Sources',
  confirmQuestion: 'Save this?',
  yes: 'Yes',
  no: 'No',
  yesWord: 'yes',
  noWord: 'no',
  draftFields: { title: 'Title', date: 'Date', time: 'Time', end_time: 'Ends', description: 'Notes' },
  tokenTitle: 'Access token',
  tokenNeeded: 'This gateway needs an access token. It is kept in this browser.',
  tokenRefused: 'That token was not accepted. Check it and try again.',
  tokenLabel: 'Token',
  tokenSubmit: 'Connect',
  reasons: {
    backend_unavailable: 'The model server cannot be reached right now. Try again later.',
    backend_timeout: 'The model server took too long to answer.',
    backend_disconnected: 'The model server stopped in the middle of the answer.',
    backend_rejected: 'The model server refused the request.',
    backend_protocol_error: 'The model server sent something the gateway could not read.',
    model_missing: 'The model server does not offer the configured model.',
    stream_deadline_exceeded: 'The answer took too long and was stopped.',
    answer_too_long: 'The answer grew too long and was stopped.',
    tool_timeout: 'A tool (calendar, email, documents) took too long.',
    tool_failed: 'A tool (calendar, email, documents) failed.',
    store_unavailable: 'The database is not available right now.',
    interrupted: 'The server restarted while this was being answered.',
    internal: 'Something went wrong inside the gateway.',
  },
  failed: 'The answer failed.',
  codes: {
    bad_request: 'The gateway could not take this message.',
    too_large: 'This message is too long.',
    unknown_job: 'This answer is no longer on the server.',
    unknown_conversation: 'This conversation is no longer on the server; your next message starts a new one.',
    rate_limited: 'Too many messages at once. Wait for the answers, then try again.',
    store_unavailable: 'The database is not available right now; send it again later.',
  },
  lost: 'This answer could not be recovered.',
};

const ko: Strings = {
  lang: 'ko',
  title: 'Switchboard',
  connecting: '연결하는 중…',
  connected: '연결됨',
  reconnecting: '연결이 끊겼어요. 다시 연결하는 중…',
  messageLabel: '메시지',
  placeholder: '메시지를 입력하세요…',
  hint: 'Enter로 보내고, Shift+Enter로 줄을 바꿔요.',
  send: '보내기',
  cancel: '취소',
  clear: '대화 지우기',
  empty: '무엇이든 물어보세요. 대화는 지우기 전까지 이 브라우저에 남아요.',
  you: '나',
  assistant: '어시스턴트',
  statusTitle: '모델',
  statusWaiting: '상태를 기다리는 중…',
  jobs: (active, pending) => `작업: ${active}개 실행 중, ${pending}개 대기`,
  queue: (waiting, running) => `${running}개 실행 중, ${waiting}개 대기`,
  states: { up: '켜짐', down: '꺼짐', unknown: '아직 확인 전' },
  loads: { idle: '한가함', normal: '보통', busy: '바쁨', very_busy: '매우 바쁨' },
  queued: (position) => (position === null ? '차례를 기다리는 중…' : `차례를 기다리는 중 (${position}번째)…`),
  sending: '보내는 중…',
  cancelled: '취소했어요.',
  sources: '출처',
  confirmQuestion: '이대로 등록할까요?',
  yes: '네',
  no: '아니요',
  yesWord: '네',
  noWord: '아니요',
  draftFields: { title: '제목', date: '날짜', time: '시간', end_time: '끝', description: '메모' },
  tokenTitle: '접근 토큰',
  tokenNeeded: '이 게이트웨이는 접근 토큰이 필요해요. 토큰은 이 브라우저에 저장돼요.',
  tokenRefused: '받아들여지지 않은 토큰이에요. 확인하고 다시 입력해 주세요.',
  tokenLabel: '토큰',
  tokenSubmit: '연결',
  reasons: {
    backend_unavailable: '지금은 모델 서버에 연결할 수 없어요. 잠시 후 다시 시도해 주세요.',
    backend_timeout: '모델 서버의 응답이 너무 늦었어요.',
    backend_disconnected: '모델 서버가 답변 도중에 멈췄어요.',
    backend_rejected: '모델 서버가 요청을 거절했어요.',
    backend_protocol_error: '모델 서버가 읽을 수 없는 응답을 보냈어요.',
    model_missing: '모델 서버에 설정된 모델이 없어요.',
    stream_deadline_exceeded: '답변이 너무 오래 걸려서 멈췄어요.',
    answer_too_long: '답변이 너무 길어져서 멈췄어요.',
    tool_timeout: '도구(캘린더, 메일, 문서)의 응답이 너무 늦었어요.',
    tool_failed: '도구(캘린더, 메일, 문서)가 실패했어요.',
    store_unavailable: '지금은 데이터베이스를 쓸 수 없어요.',
    interrupted: '답변하는 도중에 서버가 다시 시작됐어요.',
    internal: '게이트웨이 안에서 문제가 생겼어요.',
  },
  failed: '답변에 실패했어요.',
  codes: {
    bad_request: '게이트웨이가 이 메시지를 받을 수 없어요.',
    too_large: '메시지가 너무 길어요.',
    unknown_job: '이 답변은 서버에 더 이상 없어요.',
    unknown_conversation: '이 대화는 서버에 더 이상 없어요. 다음 메시지는 새 대화로 시작해요.',
    rate_limited: '메시지가 너무 많아요. 답변을 기다렸다가 다시 보내 주세요.',
    store_unavailable: '지금은 데이터베이스를 쓸 수 없어요. 잠시 후 다시 보내 주세요.',
  },
  lost: '이 답변은 되찾을 수 없어요.',
};

/** Korean for a `ko…` browser language, English otherwise. */
export function pickStrings(language: string | undefined): Strings {
  return language?.toLowerCase().startsWith('ko') ? ko : en;
}

/** A readable sentence for a job's `error` event: ours for a known reason, else the gateway's own. */
export function errorSentence(strings: Strings, reason: unknown, message: unknown): string {
  if (typeof reason === 'string' && Object.hasOwn(strings.reasons, reason)) return strings.reasons[reason]!;
  return typeof message === 'string' && message.length > 0 ? message : strings.failed;
}

/** A readable sentence for a refused frame's `code`. */
export function codeSentence(strings: Strings, code: string, message: string): string {
  return Object.hasOwn(strings.codes, code) ? strings.codes[code]! : message;
}
