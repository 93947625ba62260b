// An ESME for tests, built on node-smpp (an SMPP implementation independent of Verbal's).
//
//   node esme.js '{"port": 2775}'
//
// One process is one connection to 127.0.0.1:port. Everything that arrives is printed as
// one JSON line on stdout ({"event": ...}); a test steers it with JSON lines on stdin, each
// answered by an event carrying the command's "tag":
//
//   {"cmd": "bind", "mode": "transceiver"|"transmitter"|"receiver", "system_id", "password"}
//   {"cmd": "submit", "source", "dest", "text", "data_coding", "registered_delivery",
//    "hex" (raw short_message instead of text), "payload" (use message_payload),
//    "sar": {"ref", "total", "seq"}, "udh" (hex, prepended; sets UDHI)}
//   {"cmd": "long", "source", "dest", "text", "data_coding" (0 or 8), "ref",
//    "registered_delivery"}      split here into UDH parts (8-bit reference) and submit each
//   {"cmd": "enquire_link"}      {"cmd": "unbind"}
//   {"cmd": "close"}             drop the connection at once, without unbinding
//   {"cmd": "stop"}              close the connection and exit
//   {"cmd": "raw", "hex"}        write these bytes as they are
//   {"cmd": "answer", "status"}  answer later deliver_sm with this command_status
//   {"cmd": "silent", "on"}      leave later deliver_sm unanswered (or answer again)
//   {"cmd": "flood", "count", "window", + submit's fields}   submit `count` copies, at most
//                                `window` awaiting their response; then "flood_done" with the
//                                seconds taken, and "flood_receipts" once as many receipts
//                                as accepted submits have come (if registered_delivery asks)
//   {"cmd": "quiet", "on"}       stop (or resume) printing each deliver_sm
'use strict';

const readline = require('readline');
const smpp = require('smpp');

const options = Object.assign({ port: 2775 }, JSON.parse(process.argv[2] || '{}'));
let deliverStatus = 0;
let silent = false;
let quiet = false;
// Receipts seen, and what a flood waits for: {target, started}.
let receiptCount = 0;
let receiptWait = null;

function emit(event) {
  process.stdout.write(JSON.stringify(event) + '\n');
}

const session = smpp.connect({ host: '127.0.0.1', port: options.port });
session.on('connect', () => emit({ event: 'connected' }));
session.on('close', () => emit({ event: 'close' }));
session.on('error', (error) => emit({ event: 'error', message: String(error) }));

function tlvText(value) {
  if (value === undefined || value === null) return null;
  return Buffer.isBuffer(value) ? value.toString('latin1').replace(/\0+$/, '') : String(value);
}

session.on('deliver_sm', (pdu) => {
  if ((pdu.esm_class & 0x3c) === 0x04) {
    receiptCount += 1;
    if (receiptWait && receiptCount >= receiptWait.target) {
      emit({ event: 'flood_receipts', count: receiptCount, seconds: since(receiptWait.started) });
      receiptWait = null;
    }
  }
  if (quiet) {
    if (!silent) session.send(pdu.response({ command_status: deliverStatus }));
    return;
  }
  // node-smpp's own reading of the text, and the UDH as it came.
  const sm = pdu.short_message || {};
  const udh = sm.udh && sm.udh.length ? Buffer.concat(sm.udh).toString('hex') : null;
  const payload = pdu.message_payload;
  emit({
    event: 'deliver_sm',
    sequence_number: pdu.sequence_number,
    source: pdu.source_addr,
    source_ton: pdu.source_addr_ton,
    dest: pdu.destination_addr,
    dest_ton: pdu.dest_addr_ton,
    esm_class: pdu.esm_class,
    data_coding: pdu.data_coding,
    text: typeof sm.message === 'string' ? sm.message : null,
    udh,
    payload: payload === undefined ? null : true,
    receipted_message_id: tlvText(pdu.receipted_message_id),
    message_state: pdu.message_state === undefined ? null : pdu.message_state,
    network_error_code: pdu.network_error_code === undefined ? null : pdu.network_error_code,
  });
  if (!silent) session.send(pdu.response({ command_status: deliverStatus }));
});

session.on('enquire_link', (pdu) => {
  emit({ event: 'enquire_link' });
  session.send(pdu.response());
});

session.on('unbind', (pdu) => {
  emit({ event: 'unbind' });
  session.send(pdu.response());
});

session.on('generic_nack', (pdu) => {
  emit({ event: 'generic_nack', status: pdu.command_status, sequence_number: pdu.sequence_number });
});

function bind(cmd) {
  const request = { system_id: cmd.system_id, password: cmd.password };
  if (cmd.system_type !== undefined) request.system_type = cmd.system_type;
  if (cmd.address_range !== undefined) request.address_range = cmd.address_range;
  session['bind_' + (cmd.mode || 'transceiver')](request, (resp) => {
    emit({ event: 'bind_resp', tag: cmd.tag, status: resp.command_status, system_id: resp.system_id });
  });
}

function submitPdu(cmd, shortMessage, extra) {
  const pdu = Object.assign(
    {
      source_addr_ton: cmd.source_ton !== undefined ? cmd.source_ton : 1,
      source_addr_npi: 1,
      source_addr: cmd.source,
      dest_addr_ton: cmd.dest_ton !== undefined ? cmd.dest_ton : 1,
      dest_addr_npi: 1,
      destination_addr: cmd.dest,
      registered_delivery: cmd.registered_delivery || 0,
      data_coding: cmd.data_coding !== undefined ? cmd.data_coding : 0,
    },
    extra,
  );
  if (cmd.payload) pdu.message_payload = shortMessage;
  else pdu.short_message = shortMessage;
  return pdu;
}

function submit(cmd) {
  let message = cmd.hex !== undefined ? Buffer.from(cmd.hex, 'hex') : cmd.text;
  if (cmd.udh) message = { udh: Buffer.from(cmd.udh, 'hex'), message };
  const extra = {};
  if (cmd.sar) {
    extra.sar_msg_ref_num = cmd.sar.ref;
    extra.sar_total_segments = cmd.sar.total;
    extra.sar_segment_seqnum = cmd.sar.seq;
  }
  session.submit_sm(submitPdu(cmd, message, extra), (resp) => {
    emit({ event: 'submit_resp', tag: cmd.tag, status: resp.command_status, message_id: resp.message_id });
  });
}

// The text as octets cut into parts of at most `size` octets, never between an escape and
// the character it escapes (GSM-7) or inside a surrogate pair (UCS-2).
function split(octets, size, ucs2) {
  const parts = [];
  let start = 0;
  while (start < octets.length) {
    let end = Math.min(start + size, octets.length);
    if (end < octets.length) {
      if (ucs2 && (octets[end - 2] & 0xfc) === 0xd8) end -= 2;
      if (!ucs2 && octets[end - 1] === 0x1b) end -= 1;
    }
    parts.push(octets.subarray(start, end));
    start = end;
  }
  return parts;
}

function long(cmd) {
  const ucs2 = cmd.data_coding === 8;
  const octets = ucs2 ? smpp.encodings.UCS2.encode(cmd.text) : smpp.encodings.ASCII.encode(cmd.text);
  const parts = split(octets, ucs2 ? 134 : 153, ucs2);
  parts.forEach((part, index) => {
    const udh = Buffer.from([0x05, 0x00, 0x03, cmd.ref & 0xff, parts.length, index + 1]);
    const pdu = submitPdu(cmd, { udh, message: part }, {});
    session.submit_sm(pdu, (resp) => {
      emit({
        event: 'submit_resp', tag: cmd.tag, part: index + 1, parts: parts.length,
        status: resp.command_status, message_id: resp.message_id,
      });
    });
  });
}

function since(started) {
  return Number(process.hrtime.bigint() - started) / 1e9;
}

function flood(cmd) {
  const started = process.hrtime.bigint();
  const receiptsBefore = receiptCount;
  const window = cmd.window || 10;
  let sent = 0;
  let answered = 0;
  let accepted = 0;
  const next = () => {
    while (sent < cmd.count && sent - answered < window) {
      sent += 1;
      session.submit_sm(submitPdu(cmd, cmd.text, {}), (resp) => {
        answered += 1;
        if (resp.command_status === 0) accepted += 1;
        if (answered === cmd.count) {
          emit({ event: 'flood_done', tag: cmd.tag, count: answered, accepted, seconds: since(started) });
          if ((cmd.registered_delivery || 0) & 0x03) {
            receiptWait = { target: receiptsBefore + accepted, started };
            if (receiptCount >= receiptWait.target) {
              emit({ event: 'flood_receipts', count: receiptCount, seconds: since(started) });
              receiptWait = null;
            }
          }
        } else {
          next();
        }
      });
    }
  };
  next();
}

readline.createInterface({ input: process.stdin }).on('line', (line) => {
  if (!line.trim()) return;
  const cmd = JSON.parse(line);
  const tag = cmd.tag;
  if (cmd.cmd === 'bind') bind(cmd);
  else if (cmd.cmd === 'submit') submit(cmd);
  else if (cmd.cmd === 'long') long(cmd);
  else if (cmd.cmd === 'enquire_link') {
    session.enquire_link({}, (resp) => emit({ event: 'enquire_link_resp', tag, status: resp.command_status }));
  } else if (cmd.cmd === 'unbind') {
    session.unbind({}, (resp) => emit({ event: 'unbind_resp', tag, status: resp.command_status }));
  } else if (cmd.cmd === 'raw') session.socket.write(Buffer.from(cmd.hex, 'hex'));
  else if (cmd.cmd === 'answer') deliverStatus = cmd.status;
  else if (cmd.cmd === 'silent') silent = cmd.on;
  else if (cmd.cmd === 'quiet') quiet = cmd.on;
  else if (cmd.cmd === 'flood') flood(cmd);
  else if (cmd.cmd === 'close') session.destroy();
  emit({ event: 'ack', cmd: cmd.cmd, tag });
  if (cmd.cmd === 'stop') {
    if (session.socket.destroyed) process.exit(0);
    session.close(() => process.exit(0));
    setTimeout(() => process.exit(0), 1000).unref();
  }
});

// Ends with stdin, so a test that dies never leaves this process behind.
process.stdin.on('end', () => {
  session.destroy();
  process.exit(0);
});
