#!/usr/bin/env node
// Prints GPP strings made with the IAB Tech Lab library @iabgpp/cmpapi (npm),
// one JSON line per case, for testing how signals reads regs.gpp.
//
// Cases: the usnat section (id 7) with every combination of SaleOptOut and
// TargetedAdvertisingOptOut (0 = not applicable, 1 = opted out, 2 = did not
// opt out), with and without the GPC sub-section; usnat together with other
// sections (tcfeuv2 id 2, uspv1 id 6, usca id 8) so that the header holds
// several section ids (Fibonacci-coded ranges); strings without usnat; and
// every US state section (ids 8-27) with its sale opt-out and its second
// opt-out (sharing for usca, targeted advertising for the others).
//
//   npm install --prefix /tmp/gpp @iabgpp/cmpapi
//   GPP_PREFIX=/tmp/gpp node gpp-encode.js > gpp-strings.jsonl
'use strict';

const path = require('path');
const fs = require('fs');
const { createRequire } = require('module');

const req = process.env.GPP_PREFIX
  ? createRequire(path.join(path.resolve(process.env.GPP_PREFIX), 'package.json'))
  : require;
const { GppModel } = req('@iabgpp/cmpapi');
let libVersion = 'unknown';
for (let dir = path.dirname(req.resolve('@iabgpp/cmpapi')); dir !== path.dirname(dir); dir = path.dirname(dir)) {
  const pj = path.join(dir, 'package.json');
  if (fs.existsSync(pj)) {
    const j = JSON.parse(fs.readFileSync(pj, 'utf8'));
    if (j.name === '@iabgpp/cmpapi') { libVersion = j.version; break; }
  }
}

// The US state sections (ids 8 and up) and the field that is their second
// opt-out: California has SharingOptOut, the others
// TargetedAdvertisingOptOut.
const US_STATES = ['usca', 'usva', 'usco', 'usut', 'usct', 'usfl', 'usmt', 'usor', 'ustx', 'usde',
  'usia', 'usne', 'usnh', 'usnj', 'ustn', 'usmn', 'usmd', 'usin', 'usky', 'usri'];
const secondOptOut = (sec) => (sec === 'usca' ? 'SharingOptOut' : 'TargetedAdvertisingOptOut');

function emit(name, model, extra) {
  const s = model.encode();
  // Round trip through the library's own decoder.
  const back = new GppModel(s);
  const ids = back.getSectionIds();
  const o = { case: name, gpp: s, section_ids: ids };
  if (back.hasSection('usnat')) {
    o.usnat_sale_opt_out = back.getFieldValue('usnat', 'SaleOptOut');
    o.usnat_targeted_advertising_opt_out = back.getFieldValue('usnat', 'TargetedAdvertisingOptOut');
    o.usnat_version = back.getFieldValue('usnat', 'Version');
  }
  const states = {};
  for (const sec of US_STATES) {
    if (back.hasSection(sec)) {
      states[sec] = { sale_opt_out: back.getFieldValue(sec, 'SaleOptOut'), second_opt_out: back.getFieldValue(sec, secondOptOut(sec)) };
    }
  }
  if (Object.keys(states).length > 0) {
    o.us_states = states;
  }
  Object.assign(o, extra || {});
  o.lib = '@iabgpp/cmpapi ' + libVersion;
  process.stdout.write(JSON.stringify(o) + '\n');
}

function usnat(model, sale, targeted, gpc) {
  model.setFieldValue('usnat', 'SaleOptOutNotice', 1);
  model.setFieldValue('usnat', 'TargetedAdvertisingOptOutNotice', 1);
  model.setFieldValue('usnat', 'SharingNotice', 1);
  model.setFieldValue('usnat', 'SaleOptOut', sale);
  model.setFieldValue('usnat', 'TargetedAdvertisingOptOut', targeted);
  model.setFieldValue('usnat', 'MspaCoveredTransaction', 2);
  if (gpc !== undefined) {
    model.setFieldValue('usnat', 'GpcSegmentIncluded', true);
    model.setFieldValue('usnat', 'Gpc', gpc);
  }
}

for (const sale of [0, 1, 2]) {
  for (const targeted of [0, 1, 2]) {
    const m = new GppModel();
    usnat(m, sale, targeted);
    emit(`usnat_sale${sale}_targeted${targeted}`, m);
  }
}
{
  const m = new GppModel();
  usnat(m, 2, 2, true);
  emit('usnat_no_opt_out_gpc', m);
}
{
  const m = new GppModel();
  usnat(m, 1, 2, false);
  emit('usnat_sale_opt_out_gpc_segment', m);
}
{
  const m = new GppModel();
  m.setFieldValue('uspv1', 'Notice', 'Y');
  m.setFieldValue('uspv1', 'OptOutSale', 'N');
  m.setFieldValue('uspv1', 'LspaCovered', 'N');
  usnat(m, 2, 1);
  emit('uspv1_and_usnat_targeted_opt_out', m);
}
{
  const m = new GppModel();
  m.setFieldValue('tcfeuv2', 'CmpId', 10);
  m.setFieldValue('tcfeuv2', 'PurposeConsents', [true, false, true, true, false, false, true, false, false, false, false, false, false, false, false, false, false, false, false, false, false, false, false, false]);
  m.setFieldValue('usca', 'SaleOptOut', 1);
  usnat(m, 2, 2);
  emit('tcfeuv2_usnat_usca_no_opt_out', m);
}
{
  const m = new GppModel();
  m.setFieldValue('tcfeuv2', 'CmpId', 10);
  emit('tcfeuv2_only', m);
}
{
  const m = new GppModel();
  m.setFieldValue('usca', 'SaleOptOut', 1);
  emit('usca_only_sale_opt_out', m);
}

// Every US state section with each opt-out set alone, and with neither.
for (const sec of US_STATES) {
  for (const [sale, second] of [[1, 2], [2, 1], [2, 2]]) {
    const m = new GppModel();
    m.setFieldValue(sec, 'SaleOptOut', sale);
    m.setFieldValue(sec, secondOptOut(sec), second);
    emit(`${sec}_sale${sale}_${secondOptOut(sec)}${second}`, m);
  }
}
