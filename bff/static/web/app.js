// Timeavtaler: the citizen's page, the reference web client of the BFF.
// Plain ES module, no build step. Every GraphQL request is a trusted document sent by
// documentId (config.documents: operation name → "sha256:…"), over HTTP and WebSocket.
// Text from providers is only ever set as textContent (never parsed as HTML).

const config = JSON.parse(document.getElementById('timeavtaler-config').textContent);
const root = document.getElementById('app');
const OSLO = 'Europe/Oslo';
const dayFormat = new Intl.DateTimeFormat('nb-NO', { weekday: 'long', day: 'numeric', month: 'long', year: 'numeric', timeZone: OSLO });
const timeFormat = new Intl.DateTimeFormat('nb-NO', { hour: '2-digit', minute: '2-digit', timeZone: OSLO });
const dayKey = new Intl.DateTimeFormat('en-CA', { year: 'numeric', month: '2-digit', day: '2-digit', timeZone: OSLO });
const KINDS = { IN_PERSON: 'Oppmøte', VIDEO: 'Video', PHONE: 'Telefon', HOME_VISIT: 'Hjemmebesøk' };
const SERVICES = { HOME_NURSING: 'Hjemmesykepleie', PRACTICAL_ASSISTANCE: 'Praktisk bistand' };
const PAGE = 50;
const birthFormat = new Intl.DateTimeFormat('nb-NO', { day: '2-digit', month: '2-digit', year: 'numeric', timeZone: 'UTC' });

const state = {
  token: null, person: config.demo, people: [], me: null, subject: '', past: false,
  list: null, error: null, loading: false, updates: null, notes: new Map(), detail: null, opener: null,
};

class GraphQLError extends Error {}

// --- talking to the BFF ---------------------------------------------------------------

async function run(name, variables = {}) {
  const documentId = config.documents[name];
  if (!documentId) throw new GraphQLError(`Siden kjenner ikke dokumentet ${name}.`);
  const response = await fetch(config.endpoint, {
    method: 'POST',
    headers: { 'Content-Type': 'application/json', Accept: 'application/graphql-response+json, application/json',
               Authorization: `Bearer ${state.token}` },
    body: JSON.stringify({ documentId, variables }),
  });
  const body = await response.json().catch(() => ({}));
  if (!body.data) throw new GraphQLError(body.errors?.[0]?.message || `Tjenesten svarte ${response.status}.`);
  return body.data;
}

function subscribe() {
  state.updates?.dispose();
  if (!window.graphqlWs || !config.documents.CitizenUpdates) return;
  const url = new URL(config.endpoint, location.href);
  url.protocol = url.protocol === 'https:' ? 'wss:' : 'ws:';
  const token = state.token;
  state.updates = window.graphqlWs.createClient({
    url: url.href, lazy: false, retryAttempts: Infinity,
    connectionParams: () => ({ Authorization: `Bearer ${token}` }),
    on: { connected: (_socket, _payload, wasRetry) => { if (wasRetry) load(); } },
  });
  // graphql-ws checks that `query` is a string before it sends; the BFF fills an empty one
  // from `documentId`, as it does over HTTP.
  state.updates.subscribe({ documentId: config.documents.CitizenUpdates, query: '', variables: {} }, {
    next: ({ data }) => decided(data?.cancellationUpdates?.request),
    error: () => {},
    complete: () => {},
  });
}

async function signIn(handle) {
  if (config.sandbox) {
    const response = await fetch(`/_dev/token?person=${encodeURIComponent(handle)}`);
    if (!response.ok) throw new GraphQLError('Fant ikke denne personen i sandkassen.');
    state.token = (await response.json()).token;
    state.person = handle;
  }
  state.me = (await run('CitizenMe')).me;
  state.subject = '';
  state.notes.clear();
  subscribe();
}

/** In production the host page gives the token: sessionStorage, or a message from the same origin. */
function tokenFromHost() {
  const stored = sessionStorage.getItem('timeavtaler.accessToken');
  if (stored) return Promise.resolve(stored);
  return new Promise((resolve) => {
    window.addEventListener('message', function listen(event) {
      if (event.origin === location.origin && event.data?.type === 'timeavtaler:token' && event.data.token) {
        window.removeEventListener('message', listen);
        resolve(event.data.token);
      }
    });
  });
}

// --- what the citizen does ----------------------------------------------------------

async function load(after = null) {
  state.loading = true;
  render();
  try {
    const filter = state.past ? { includePast: true } : {};
    const data = await run('CitizenList', { first: PAGE, after, filter, onBehalfOf: state.subject || null });
    const page = data.appointments;
    state.list = after && state.list ? { ...page, nodes: [...state.list.nodes, ...page.nodes] } : page;
    state.error = null;
  } catch (error) {
    state.error = error.message;
  }
  state.loading = false;
  render();
}

function ask(row, button) {
  state.opener = button;
  const dialog = document.getElementById('confirm');
  dialog.querySelector('#confirm-what').textContent = `${row.title}, ${describeTime(row)} – ${where(row)}`;
  dialog.querySelector('#reason').value = '';
  dialog.dataset.id = row.id;
  dialog.returnValue = '';
  dialog.showModal();
  dialog.querySelector('#reason').focus();
}

async function cancel(id, reason) {
  const row = state.list.nodes.find((r) => r.id === id);
  state.notes.set(id, { text: 'Sender avbestillingen …' });
  render();
  try {
    const data = await run('CitizenCancel', { input: { appointmentId: id, idempotencyKey: newKey(), reason: reason || null } });
    const answer = data.requestCancellation;
    if (answer.errors.length) {
      state.notes.set(id, { text: answer.errors[0].message, refused: true });
    } else {
      // The provider's decision may have arrived over the subscription before this answer:
      // a PENDING answer never overwrites it.
      const decided = row.cancellation && row.cancellation.status !== 'PENDING';
      if (!(decided && answer.request.status === 'PENDING')) row.cancellation = answer.request;
      state.notes.delete(id);
    }
  } catch (error) {
    state.notes.set(id, { text: `Avbestillingen ble ikke sendt: ${error.message}`, refused: true });
  }
  render();
  document.querySelector(`[data-row="${CSS.escape(id)}"] .cancel-state`)?.focus();
}

function decided(request) {
  if (!request || !state.list) return;
  const row = state.list.nodes.find((r) => r.id === request.appointment?.id);
  if (!row) return;
  row.cancellation = { ...(row.cancellation || {}), ...request };
  if (request.appointment.status) Object.assign(row, { status: request.appointment.status, cancelledBy: request.appointment.cancelledBy });
  if (request.status !== 'PENDING') row.canCancel = false;
  render();
}

async function showDetail(id, button) {
  state.opener = button;
  try {
    state.detail = (await run('CitizenAppointment', { id })).appointment;
    state.error = state.detail ? null : 'Fant ikke timen.';
  } catch (error) {
    state.error = error.message;
  }
  render();
  document.getElementById('detail-title')?.focus();
}

async function calendar() {
  const query = state.subject ? `?onBehalfOf=${encodeURIComponent(state.subject)}` : '';
  const response = await fetch(`/calendar.ics${query}`, { headers: { Authorization: `Bearer ${state.token}` } });
  if (!response.ok) { state.error = 'Kalenderfilen kunne ikke lages akkurat nå.'; render(); return; }
  const href = URL.createObjectURL(await response.blob());
  const link = h('a', { href, download: 'timeavtaler.ics' });
  document.body.append(link);
  link.click();
  link.remove();
  setTimeout(() => URL.revokeObjectURL(href), 10000);
}

// --- words ---------------------------------------------------------------------------

function statusText(row) {
  if (row.status === 'CANCELLED') return row.cancelledBy === 'PATIENT' ? (state.subject ? 'Avlyst av pasienten' : 'Avlyst av deg') : 'Avlyst av behandler';
  if (row.status === 'ASSIGNED') return 'Tildelt';
  if (row.status === 'FULFILLED') return 'Gjennomført';
  if (row.status === 'NOSHOW') return 'Ikke møtt';
  return row.confirmed === false ? 'Foreslått' : 'Bekreftet';
}

function cancellationText(row) {
  const c = row.cancellation;
  if (!c) return null;
  if (c.status === 'PENDING') return `Venter på svar fra ${row.organization || row.source.name}`;
  if (c.status === 'ACCEPTED') return 'Avbestilt';
  if (c.status === 'REJECTED') return `Ikke godtatt: ${c.providerMessage || 'behandleren sa nei.'}`;
  return `Avbestillingen kunne ikke sendes${c.providerMessage ? `: ${c.providerMessage}` : '.'}`;
}

function describeTime(row) {
  const start = new Date(row.start);
  const end = row.end ? `–${timeFormat.format(new Date(row.end))}` : '';
  return `${dayFormat.format(start)} kl. ${timeFormat.format(start)}${end}`;
}

function where(row) {
  const place = row.location ? [row.location.name, row.location.address].filter(Boolean).join(', ') : '';
  return [row.organization, row.department, place].filter(Boolean).join(' · ');
}

function notices() {
  const sources = state.list?.sources || [];
  const down = sources.filter((s) => s.state === 'UNAVAILABLE').map((s) => s.source.name);
  const old = sources.filter((s) => s.state === 'STALE');
  const out = [];
  if (down.length) out.push(`Vi får ikke hentet timer fra ${list(down)} akkurat nå. Listen kan derfor mangle timer; prøv igjen senere.`);
  for (const s of old) {
    const when = s.fetchedAt ? ` (hentet ${dayFormat.format(new Date(s.fetchedAt))} kl. ${timeFormat.format(new Date(s.fetchedAt))})` : '';
    out.push(`Vi får ikke hentet timer fra ${s.source.name} akkurat nå. Du ser en eldre kopi${when}, som kan være utdatert.`);
  }
  return out;
}

function when(instant) {
  if (!instant) return null;
  const at = new Date(instant);
  return `${dayFormat.format(at)} kl. ${timeFormat.format(at)}`;
}

function list(names) {
  return names.length < 2 ? names.join('') : `${names.slice(0, -1).join(', ')} og ${names[names.length - 1]}`;
}

function newKey() {
  if (crypto.randomUUID) return crypto.randomUUID();
  return Array.from(crypto.getRandomValues(new Uint8Array(16)), (b) => b.toString(16).padStart(2, '0')).join('');
}

// --- drawing ---------------------------------------------------------------------------

function h(tag, attributes = {}, ...children) {
  const element = document.createElement(tag);
  for (const [name, value] of Object.entries(attributes)) {
    if (value === false || value === null || value === undefined) continue;
    if (name.startsWith('on')) element.addEventListener(name.slice(2), value);
    else element.setAttribute(name, value === true ? '' : value);
  }
  element.append(...children.flat(Infinity).filter((c) => c !== null && c !== undefined && c !== false));
  return element;
}

function header() {
  const picker = config.sandbox && state.people.length ? h('div', { class: 'field' },
    h('label', { for: 'login' }, 'Logg inn som (sandkasse)'),
    h('select', { id: 'login', onchange: async (e) => { await signIn(e.target.value); state.detail = null; await load(); } },
      state.people.map((p) => h('option', { value: p.handle, selected: p.handle === state.person }, p.name)))) : null;
  const who = state.me ? h('p', { class: 'who' }, `Innlogget: ${state.me.name}`) : null;
  return h('header', { class: 'top' }, h('p', { class: 'brand' }, config.sandbox ? 'Timeavtaler · sandkasse' : 'Timeavtaler'), who, picker);
}

function controls() {
  const people = state.me ? [{ id: '', name: `${state.me.name} (deg)` },
    ...state.me.mayActFor.map((p) => ({ id: p.id, name: p.birthDate ? `${p.name} (f. ${birthFormat.format(new Date(p.birthDate))})` : p.name }))] : [];
  return h('div', { class: 'controls' },
    h('div', { class: 'field' },
      h('label', { for: 'subject' }, 'Du ser timene til:'),
      h('select', { id: 'subject', onchange: (e) => { state.subject = e.target.value; state.detail = null; load(); } },
        people.map((p) => h('option', { value: p.id, selected: p.id === state.subject }, p.name)))),
    h('div', { class: 'field check' },
      h('input', { type: 'checkbox', id: 'past', checked: state.past, onchange: (e) => { state.past = e.target.checked; load(); } }),
      h('label', { for: 'past' }, 'Vis tidligere avtaler')),
    h('button', { type: 'button', class: 'secondary', onclick: calendar }, 'Legg til i kalender'));
}

function rowView(row) {
  const note = state.notes.get(row.id);
  const pending = row.cancellation?.status === 'PENDING';
  const answer = note ? note.text : cancellationText(row);
  const kind = [KINDS[row.kind], SERVICES[row.service]].filter(Boolean).join(' · ');
  return h('li', { class: 'row', 'data-row': row.id },
    h('p', { class: 'time' }, h('time', { datetime: row.start }, timeFormat.format(new Date(row.start))),
      row.end ? h('span', { class: 'until' }, `–${timeFormat.format(new Date(row.end))}`) : null),
    h('div', { class: 'body' },
      h('h3', {}, h('button', { type: 'button', class: 'link', onclick: (e) => showDetail(row.id, e.currentTarget) }, row.title)),
      h('p', { class: 'where' }, where(row)),
      h('p', { class: 'meta' },
        kind ? h('span', { class: 'kind' }, kind) : null,
        h('span', { class: `status status-${row.status.toLowerCase()}` }, statusText(row)),
        h('span', { class: 'source' }, `Fra ${row.source.name}`)),
      answer ? h('p', { class: `cancel-state${note?.refused || row.cancellation?.status === 'REJECTED' ? ' refused' : ''}${pending ? ' pending' : ''}`,
                        role: note?.refused ? 'alert' : 'status', tabindex: '-1' }, answer) : null,
      row.canCancel && !pending && !note ? h('button', { type: 'button', class: 'danger', 'aria-label': `Avbestill ${row.title}, ${describeTime(row)}`,
                                                        onclick: (e) => ask(row, e.currentTarget) }, 'Avbestill') : null));
}

function listView() {
  if (state.detail) return detailView(state.detail);
  const rows = state.list?.nodes || [];
  const days = new Map();
  for (const row of rows) {
    const key = dayKey.format(new Date(row.start));
    if (!days.has(key)) days.set(key, []);
    days.get(key).push(row);
  }
  const empty = state.list && !rows.length ? h('p', { class: 'empty' }, state.past ? 'Ingen timer å vise.' : 'Ingen kommende timer.') : null;
  return h('section', { 'aria-labelledby': 'heading', 'aria-busy': state.loading ? 'true' : 'false' },
    h('h1', { id: 'heading' }, 'Timeavtaler'),
    controls(),
    h('div', { class: 'notices', role: 'status' }, notices().map((text) => h('p', { class: 'notice' }, text))),
    state.loading && !state.list ? h('p', { class: 'loading' }, 'Henter timene …') : null,
    empty,
    [...days.values()].map((dayRows) => h('section', { class: 'day' },
      h('h2', {}, capitalise(dayFormat.format(new Date(dayRows[0].start)))),
      h('ul', { class: 'rows' }, dayRows.map(rowView)))),
    rows.length ? h('p', { class: 'count' }, `Viser ${rows.length} av ${state.list.totalCount} ${state.list.totalCount === 1 ? 'time' : 'timer'}.`) : null,
    state.list?.pageInfo.hasNextPage ? h('button', { type: 'button', class: 'secondary', id: 'more', onclick: () => load(state.list.pageInfo.endCursor) }, 'Vis flere timer') : null);
}

function detailView(row) {
  const facts = [
    ['Tid', describeTime(row)], ['Sted', where(row)], ['Behandler', row.practitioner],
    ['Type', KINDS[row.kind]], ['Status', statusText(row)], ['Pasient', row.patient?.name],
    ['Fra', row.source.name], ['Avbestilling', row.cancellation ? cancellationText(row) : null],
    ['Din begrunnelse', row.cancellation?.reason], ['Sendt', when(row.cancellation?.requestedAt)],
    ['Svar mottatt', when(row.cancellation?.decidedAt)],
  ].filter(([, value]) => value);
  return h('section', { class: 'detail', 'aria-labelledby': 'detail-title' },
    h('button', { type: 'button', class: 'secondary', onclick: () => { const id = row.id; state.detail = null; render(); document.querySelector(`[data-row="${CSS.escape(id)}"] button.link`)?.focus(); } }, '← Tilbake til timene'),
    h('h1', { id: 'detail-title', tabindex: '-1' }, row.title),
    h('dl', {}, facts.map(([term, value]) => [h('dt', {}, term), h('dd', {}, value)])));
}

function dialog() {
  const close = () => document.getElementById('confirm').close();
  // Closed by a button or Escape: back to the button that opened it, or the one drawn in its
  // place if the list was drawn again meanwhile (after a confirmed cancel, `cancel` moves
  // focus to the row's answer instead).
  const restore = (event) => {
    if (event.target.returnValue === 'sent') return;
    const id = event.target.dataset.id;
    (state.opener?.isConnected ? state.opener : document.querySelector(`[data-row="${CSS.escape(id)}"] button.danger`))?.focus();
  };
  return h('dialog', { id: 'confirm', 'aria-labelledby': 'confirm-title', onclose: restore },
    h('h2', { id: 'confirm-title' }, 'Avbestille timen?'),
    h('p', { id: 'confirm-what' }),
    h('label', { for: 'reason' }, 'Begrunnelse (valgfritt)'),
    h('textarea', { id: 'reason', rows: '3', maxlength: '500' }),
    h('div', { class: 'actions' },
      h('button', { type: 'button', class: 'secondary', onclick: close }, 'Behold timen'),
      h('button', { type: 'button', class: 'danger', id: 'confirm-yes', onclick: () => {
        const box = document.getElementById('confirm');
        const id = box.dataset.id;
        const reason = box.querySelector('#reason').value.trim();
        box.close('sent');
        cancel(id, reason);
      } }, 'Avbestill timen')));
}

function render() {
  const focused = document.activeElement?.id;
  const main = h('main', { id: 'main', tabindex: '-1' },
    state.error ? h('p', { class: 'error', role: 'alert' }, state.error) : null,
    listView());
  const existing = document.getElementById('confirm');
  root.replaceChildren(header(), main, existing && existing.open ? existing : dialog());
  if (focused && focused !== 'main') document.getElementById(focused)?.focus();
}

function capitalise(text) {
  return text.charAt(0).toUpperCase() + text.slice(1);
}

// --- start -----------------------------------------------------------------------------

async function start() {
  try {
    if (config.sandbox) {
      state.people = (await (await fetch('/_dev/people')).json()).people;
      const asked = new URLSearchParams(location.search).get('person');
      await signIn(asked || config.demo);
    } else {
      state.token = await tokenFromHost();
      await signIn(null);
    }
    await load();
  } catch (error) {
    state.error = error.message;
    render();
  }
}

start();
