// An SMSC for tests, built on node-smpp (an SMPP implementation independent of Verbal's).
//
//   node smsc.js '{"port": 0, "system_id": "verbal", "password": "secret"}'
//
// It listens on 127.0.0.1 only. Every bind, submit_sm, receipt and MO it handles is printed
// as one JSON line on stdout ({"event": ...}), which is how a test counts what arrived.
// A test steers it with JSON lines on stdin:
//
//   {"cmd": "set", ...settings}        change any setting below, from now on
//   {"cmd": "throttle", "count": N}    answer the next N submit_sm with ESME_RTHROTTLED
//   {"cmd": "mo", ...}                 send a deliver_sm (an MO) to a bound receiver
//   {"cmd": "receipt", ...}            send a delivery receipt as given
//   {"cmd": "stats"}                   print the most submit_sm ever awaiting a response
//                                      at once, per session ({"event": "stats", ...})
//   {"cmd": "stop"}                    stop reading, flush what was answered, close, exit
//
// Settings: system_id, password, system_type (checked when set), id_format ("hex", "dec",
// "uuid"), receipt_id_format ("same", "dec", "hex": how the receipt spells the id),
// receipt_stat ("DELIVRD" ...), receipt_err, receipt_delay_ms, receipt_tlvs (bool),
// receipt_first (send the receipt before the submit_sm_resp), resp_delay_ms,
// receipts_on ("same" session or "other"), submit_status (answer every submit_sm so),
// dedupe (answer a submit_sm that repeats an accepted one, same addresses and text, with
// the first one's id and no second receipt, as SMSCs that detect duplicates do: printed as
// {"event": "submit_repeated"}), hold_for_window (N: hold responses until N submit_sm of a
// session await theirs, then answer them all, or after hold_ms; receipts follow responses).
'use strict';

const crypto = require('crypto');
const readline = require('readline');
const smpp = require('smpp');

const settings = Object.assign(
  {
    port: 0,
    system_id: 'verbal',
    password: 'secret',
    system_type: null,
    id_format: 'hex',
    receipt_id_format: 'same',
    receipt_stat: 'DELIVRD',
    receipt_err: '000',
    receipt_delay_ms: 20,
    receipt_tlvs: true,
    receipt_first: false,
    resp_delay_ms: 0,
    receipts_on: 'same',
    submit_status: 0,
    dedupe: false,
    hold_for_window: 0,
    hold_ms: 2000,
  },
  JSON.parse(process.argv[2] || '{}'),
);

// Ids keep growing across restarts of this peer, as a real SMSC's would.
let nextId = Date.now();
let throttleCount = 0;
// Accepted submits by addresses and text, for `dedupe`.
const acceptedIds = new Map();
let sessionCounter = 0;
const sessions = new Set();
const allSessions = [];

function emit(event) {
  process.stdout.write(JSON.stringify(event) + '\n');
}

function newMessageId() {
  nextId += 1;
  if (settings.id_format === 'dec') return String(nextId);
  if (settings.id_format === 'uuid') return crypto.randomUUID();
  return nextId.toString(16);
}

function receiptId(messageId) {
  if (settings.receipt_id_format === 'dec' && /^[0-9a-f]+$/i.test(messageId)) {
    return BigInt('0x' + messageId).toString(10);
  }
  if (settings.receipt_id_format === 'hex' && /^[0-9]+$/.test(messageId)) {
    return BigInt(messageId).toString(16);
  }
  return messageId;
}

function receivers(except) {
  const bound = [...sessions].filter((s) => s.receives && s.socket.writable);
  const others = bound.filter((s) => s !== except);
  return others.length ? others : bound;
}

function pickReceiver(origin) {
  if (settings.receipts_on === 'other') return receivers(origin)[0];
  if (origin && origin.receives && origin.socket.writable) return origin;
  return receivers(null)[0];
}

function smscTime(date) {
  const pad = (n) => String(n).padStart(2, '0');
  return (
    pad(date.getUTCFullYear() % 100) + pad(date.getUTCMonth() + 1) + pad(date.getUTCDate()) +
    pad(date.getUTCHours()) + pad(date.getUTCMinutes())
  );
}

function sendReceipt(origin, submit, messageId) {
  const session = pickReceiver(origin);
  if (!session) {
    emit({ event: 'receipt_unsent', message_id: messageId, reason: 'no receiver bound' });
    return;
  }
  const now = smscTime(new Date());
  const stat = settings.receipt_stat;
  const text =
    `id:${receiptId(messageId)} sub:001 dlvrd:${stat === 'DELIVRD' ? '001' : '000'} ` +
    `submit date:${now} done date:${now} stat:${stat} err:${settings.receipt_err} text:`;
  const states = { DELIVRD: 2, EXPIRED: 3, DELETED: 4, UNDELIV: 5, ACCEPTD: 6, UNKNOWN: 7, REJECTD: 8 };
  const pdu = {
    source_addr_ton: submit.dest_addr_ton,
    source_addr_npi: submit.dest_addr_npi,
    source_addr: submit.destination_addr,
    dest_addr_ton: submit.source_addr_ton,
    dest_addr_npi: submit.source_addr_npi,
    destination_addr: submit.source_addr,
    esm_class: smpp.ESM_CLASS.MC_DELIVERY_RECEIPT,
    short_message: text,
  };
  if (settings.receipt_tlvs) {
    pdu.receipted_message_id = messageId;
    pdu.message_state = states[stat] || 7;
  }
  session.deliver_sm(pdu, (resp) => {
    emit({ event: 'deliver_resp', kind: 'receipt', message_id: messageId, status: resp.command_status, session: session.id });
  });
  emit({ event: 'receipt', message_id: messageId, text, session: session.id });
}

function describeSubmit(pdu, session, messageId, status) {
  const sm = pdu.short_message || {};
  const payload = pdu.message_payload;
  let text = sm.message;
  if ((text === undefined || text === '' || Buffer.isBuffer(text)) && payload) {
    text = payload.message !== undefined ? payload.message : payload;
  }
  return {
    event: status === 0 ? 'submit' : 'submit_refused',
    status,
    session: session.id,
    message_id: messageId,
    source: pdu.source_addr,
    source_ton: pdu.source_addr_ton,
    dest: pdu.destination_addr,
    dest_ton: pdu.dest_addr_ton,
    data_coding: pdu.data_coding,
    esm_class: pdu.esm_class,
    registered_delivery: pdu.registered_delivery,
    text: Buffer.isBuffer(text) ? text.toString('hex') : text,
    udh: sm.udh && sm.udh.length ? Buffer.concat(sm.udh).toString('hex') : null,
    sar: pdu.sar_msg_ref_num !== undefined
      ? { ref: pdu.sar_msg_ref_num, total: pdu.sar_total_segments, seq: pdu.sar_segment_seqnum }
      : null,
    payload: payload !== undefined,
  };
}

// Answers the submit_sm of ``pdu``, keeping count of how many await their answer.
function answer(session, pdu, options) {
  session.outstanding -= 1;
  session.send(pdu.response(options));
}

function onSubmit(session, pdu) {
  session.outstanding += 1;
  session.maxOutstanding = Math.max(session.maxOutstanding, session.outstanding);
  let status = settings.submit_status;
  if (throttleCount > 0) {
    throttleCount -= 1;
    status = smpp.ESME_RTHROTTLED;
  }
  if (status !== 0) {
    emit(describeSubmit(pdu, session, null, status));
    answer(session, pdu, { command_status: status });
    return;
  }
  const described = describeSubmit(pdu, session, null, 0);
  const dedupeKey = JSON.stringify([described.source, described.dest, described.text, described.udh]);
  if (settings.dedupe && acceptedIds.has(dedupeKey)) {
    const firstId = acceptedIds.get(dedupeKey);
    emit(Object.assign(described, { event: 'submit_repeated', message_id: firstId }));
    const respondAgain = () => answer(session, pdu, { message_id: firstId });
    if (settings.resp_delay_ms > 0) setTimeout(respondAgain, settings.resp_delay_ms);
    else respondAgain();
    return;
  }
  const messageId = newMessageId();
  acceptedIds.set(dedupeKey, messageId);
  // Logged before the response is written: a submit is "accepted" once it is answered.
  emit(describeSubmit(pdu, session, messageId, 0));
  const wantsReceipt = (pdu.registered_delivery & 0x03) !== 0;
  const respond = () => answer(session, pdu, { message_id: messageId });
  if (settings.hold_for_window > 0) {
    hold(session, () => {
      respond();
      if (wantsReceipt) {
        setTimeout(() => sendReceipt(session, pdu, messageId), settings.receipt_delay_ms);
      }
    });
    return;
  }
  if (wantsReceipt && settings.receipt_first) {
    sendReceipt(session, pdu, messageId);
    setTimeout(respond, Math.max(settings.resp_delay_ms, 50));
    return;
  }
  if (settings.resp_delay_ms > 0) setTimeout(respond, settings.resp_delay_ms);
  else respond();
  if (wantsReceipt) {
    setTimeout(() => sendReceipt(session, pdu, messageId), settings.receipt_delay_ms);
  }
}

// Holds a response until the session has hold_for_window submits waiting (or hold_ms passed).
function hold(session, release) {
  session.held.push(release);
  if (session.held.length >= settings.hold_for_window) releaseHeld(session);
  else if (session.held.length === 1) {
    session.heldTimer = setTimeout(() => releaseHeld(session), settings.hold_ms);
  }
}

function releaseHeld(session) {
  clearTimeout(session.heldTimer);
  const held = session.held;
  session.held = [];
  for (const release of held) release();
}

function onBind(session, pdu, mode) {
  let status = 0;
  if (pdu.system_id !== settings.system_id) status = smpp.ESME_RINVSYSID;
  else if (pdu.password !== settings.password) status = smpp.ESME_RINVPASWD;
  else if (settings.system_type !== null && pdu.system_type !== settings.system_type) {
    status = smpp.ESME_RINVSYSTYP;
  }
  emit({ event: 'bind', mode, system_id: pdu.system_id, system_type: pdu.system_type, status, session: session.id });
  session.send(pdu.response({ command_status: status, system_id: 'nodesmsc' }));
  if (status !== 0) return;
  session.bound = mode;
  session.transmits = mode !== 'receiver';
  session.receives = mode !== 'transmitter';
}

const server = smpp.createServer((session) => {
  sessionCounter += 1;
  session.id = sessionCounter;
  session.outstanding = 0;
  session.maxOutstanding = 0;
  session.held = [];
  allSessions.push(session);
  sessions.add(session);
  session.on('bind_transceiver', (pdu) => onBind(session, pdu, 'transceiver'));
  session.on('bind_transmitter', (pdu) => onBind(session, pdu, 'transmitter'));
  session.on('bind_receiver', (pdu) => onBind(session, pdu, 'receiver'));
  session.on('submit_sm', (pdu) => {
    if (!session.transmits) {
      session.send(pdu.response({ command_status: smpp.ESME_RINVBNDSTS }));
      return;
    }
    onSubmit(session, pdu);
  });
  session.on('enquire_link', (pdu) => {
    emit({ event: 'enquire_link', session: session.id });
    session.send(pdu.response());
  });
  session.on('unbind', (pdu) => {
    emit({ event: 'unbind', session: session.id });
    session.send(pdu.response());
    session.close();
  });
  session.on('close', () => {
    sessions.delete(session);
    emit({ event: 'close', session: session.id });
  });
  session.on('error', (error) => emit({ event: 'error', message: String(error), session: session.id }));
});

function sendMo(cmd) {
  const session = receivers(null)[0];
  if (!session) {
    emit({ event: 'mo_unsent', reason: 'no receiver bound', tag: cmd.tag });
    return;
  }
  const pdu = {
    source_addr_ton: cmd.source_ton !== undefined ? cmd.source_ton : 1,
    source_addr_npi: 1,
    source_addr: cmd.source,
    dest_addr_ton: cmd.dest_ton !== undefined ? cmd.dest_ton : 1,
    dest_addr_npi: 1,
    destination_addr: cmd.dest,
    esm_class: 0,
  };
  if (cmd.data_coding !== undefined) pdu.data_coding = cmd.data_coding;
  const message = cmd.udh ? { udh: Buffer.from(cmd.udh, 'hex'), message: cmd.text } : cmd.text;
  if (cmd.payload) pdu.message_payload = message;
  else pdu.short_message = message;
  if (cmd.sar) {
    pdu.sar_msg_ref_num = cmd.sar.ref;
    pdu.sar_total_segments = cmd.sar.total;
    pdu.sar_segment_seqnum = cmd.sar.seq;
  }
  session.deliver_sm(pdu, (resp) => {
    emit({ event: 'deliver_resp', kind: 'mo', tag: cmd.tag, status: resp.command_status, session: session.id });
  });
}

function sendRawReceipt(cmd) {
  const session = receivers(null)[0];
  if (!session) {
    emit({ event: 'receipt_unsent', reason: 'no receiver bound', tag: cmd.tag });
    return;
  }
  const pdu = {
    source_addr: cmd.source || '',
    destination_addr: cmd.dest || '',
    esm_class: smpp.ESM_CLASS.MC_DELIVERY_RECEIPT,
    short_message: cmd.text || '',
  };
  if (cmd.receipted_message_id) pdu.receipted_message_id = cmd.receipted_message_id;
  if (cmd.message_state) pdu.message_state = cmd.message_state;
  session.deliver_sm(pdu, (resp) => {
    emit({ event: 'deliver_resp', kind: 'receipt', tag: cmd.tag, status: resp.command_status, session: session.id });
  });
}

function stop() {
  server.close();
  // Stop taking PDUs; end each connection once every submit_sm it took is answered.
  for (const session of sessions) session.pause();
  const wait = setInterval(() => {
    for (const session of sessions) {
      if (session.outstanding === 0 && !session.closing) {
        session.closing = true;
        session.close();
      }
    }
    if (sessions.size === 0) {
      clearInterval(wait);
      emit({ event: 'stopped' });
      process.exit(0);
    }
  }, 5);
}

readline.createInterface({ input: process.stdin }).on('line', (line) => {
  if (!line.trim()) return;
  const { cmd: name, tag, ...args } = JSON.parse(line);
  if (name === 'set') Object.assign(settings, args);
  else if (name === 'throttle') throttleCount = args.count;
  else if (name === 'mo') sendMo({ tag, ...args });
  else if (name === 'receipt') sendRawReceipt({ tag, ...args });
  else if (name === 'stop') stop();
  else if (name === 'stats') {
    const maxOutstanding = {};
    for (const session of allSessions) maxOutstanding[session.id] = session.maxOutstanding;
    emit({ event: 'stats', tag, max_outstanding: maxOutstanding });
  }
  emit({ event: 'ack', cmd: name, tag });
});

server.listen(settings.port, '127.0.0.1', () => {
  emit({ event: 'listening', port: server.address().port });
});
