// The AMQP 0-9-1 wire codec's public surface: framing (frames.ts), methods
// (methods.ts), content headers and basic properties (content.ts), field
// tables (fields.ts) and the one error it raises (errors.ts). Pure: no
// sockets, no timers; every decoder refuses malformed input with
// AmqpCodecError carrying the reply code to close the connection with.

export { AmqpCodecError, type AmqpCodecReplyCode } from './errors.js';
export {
  decodeFieldTable,
  encodeFieldTable,
  fieldString,
  fieldTableFromPlain,
  fieldTableGet,
  fieldTableSize,
  fieldTableToPlain,
  fieldValueFromPlain,
  fieldValueToPlain,
  MAX_FIELD_DEPTH,
  writeFieldTable,
  type FieldTable,
  type FieldValue,
} from './fields.js';
export {
  checkProtocolHeader,
  encodeFrame,
  FRAME_BODY,
  FRAME_END,
  FRAME_HEADER,
  FRAME_HEARTBEAT,
  FRAME_METHOD,
  FRAME_MIN_SIZE,
  FRAME_OVERHEAD,
  FrameReader,
  HEARTBEAT_FRAME,
  PROTOCOL_HEADER,
  type Frame,
} from './frames.js';
export {
  AMQP_METHOD_NAMES,
  decodeMethod,
  encodeMethodFrame,
  METHOD_HAS_CONTENT,
  methodIds,
  methodName,
  type AmqpMethod,
  type AmqpMethodName,
  type MethodOf,
} from './methods.js';
export {
  CLASS_BASIC,
  decodeBasicProperties,
  decodeContentHeader,
  encodeBasicProperties,
  encodeBodyFrames,
  encodeContentHeaderFrame,
  withHeaders,
  type BasicProperties,
  type ContentHeader,
} from './content.js';
