// The call page: pre-join check, joining, the call itself, reconnection and leaving.
//
// Two pages use it: join.html (data-mode="join": the pre-join form with its "Beitreten" button) and the
// waiting room, waiting.html (data-mode="wait": waiting.js shows the queue and calls startCall() when an
// advisor admits the citizen, with the camera and microphone that are already open — no reload).

import { CallChat } from "./call_chat.js";
import { directJoinWanted } from "./direct.js";
import { DocumentsPanel } from "./documents.js";
import { AdvisorWatch, endedMeanwhile, showEnding, showInterrupted } from "./endscreen.js";
import { ChatToggle, RemoteIndicators, confirmLeave, mediaStateMessage } from "./indicators.js";
import { $ } from "./lib/dom.js";
import { pageLang } from "./lib/intl.js";
import { LocalMedia } from "./media.js";
import { PeerSession } from "./peer.js";
import { ScreenShare } from "./screenshare.js";
import { startPrejoinChecks } from "./prejoin.js";
import { SignalingClient, signalingUrl } from "./signaling.js";
import { loadStrings, tr } from "./strings.js";
import { ChatLog, StatusLine, Tiles, displayName } from "./ui.js";

const root = $("call-app");
loadStrings($("call-strings"));

const mode = root.dataset.mode || "join";
let token = root.dataset.token || "";
let role = root.dataset.role || "guest";
const lang = pageLang(root);
const NAME_KEY = "sprechstunde.name";

const media = new LocalMedia();
const tiles = new Tiles($("remote-tiles"), $("waiting"));
const chat = new ChatLog($("chat-log"), $("chat-empty"), lang);
const callChat = new CallChat(chat, $("chat-log"));
const status = new StatusLine($("status"));
// sharing this page's screen, and another's screen large above the tiles (screenshare.js)
const screenShare = new ScreenShare({
  root, peer: () => peer, send: (message) => signaling && signaling.send(message), status,
  nameOf: (id) => displayName(tiles.info(id) || {}),
});
// mute / camera-off marks, connection quality, pin and fullscreen on the remote tiles; the phone chat toggle
const indicators = new RemoteIndicators(tiles, { peer: () => peer });
const chatToggle = new ChatToggle({
  root, button: $("chat-toggle"), badge: $("chat-unread"), panel: $("chat-panel"), input: $("chat-input"),
});
let documents = null; // created once the join token is known
// the citizen's end screen when the advisor closes the consultation or leaves for good (endscreen.js)
const advisorWatch = new AdvisorWatch({ onGone: () => consultationOver(showInterrupted) });

let state = mode === "wait" ? "waiting" : "prejoin";
let signaling = null;
let peer = null;
let participantId = null;
let selfName = "";
let chatMax = 2000;
let ownDisplayName = "";
let chatSeq = 0;
const chatRequests = new Map(); // request id of a sent chat message → its client_message_id
const departed = new Set(); // participants that left; a late offer must not bring their tile back

window.sprechstunde = {
  get pc() {
    return peer ? peer.pc : null;
  },
  get participantId() {
    return participantId;
  },
  get state() {
    return state;
  },
};

function setState(next) {
  state = next;
  root.dataset.state = next;
}

function inPrejoin() {
  return state === "prejoin" || state === "waiting";
}

/** Tell the others whether microphone and camera are on (indicators.js marks it on their tiles). */
function sendMediaState() {
  if (signaling && state === "in-call") signaling.send(mediaStateMessage(media));
}

/** Set a property of an element that only one of the two pages has. */
function optional(id) {
  return $(id) || { hidden: true, disabled: false, textContent: "", setAttribute() {}, removeAttribute() {} };
}

function showNotice(node, text, kind) {
  node.textContent = text || "";
  node.hidden = !text;
  if (kind) node.className = `notice ${kind}`;
}

// ---------------------------------------------------------------- local media and devices

function refreshLocalViews() {
  const video = media.track("video");
  for (const id of ["preview-video", "self-video"]) {
    const node = $(id);
    const current = node.srcObject ? node.srcObject.getVideoTracks()[0] : null;
    if (current !== video) {
      node.srcObject = video ? new MediaStream([video]) : null;
      if (video) node.play().catch(() => {});
    }
  }
  const cameraOn = !!video && media.enabled.video;
  $("preview-off").hidden = cameraOn;
  $("preview-video").hidden = !cameraOn;
  root.classList.toggle("camera-off", !cameraOn);
  updateControls();
}

function updateControls() {
  const setButton = (button, hasTrack, on, labels) => {
    button.querySelector(".label").textContent = !hasTrack ? labels.none : on ? labels.on : labels.off;
    button.disabled = !hasTrack;
    button.classList.toggle("is-off", !hasTrack || !on);
  };
  setButton($("mic-button"), !!media.track("audio"), media.enabled.audio, {
    none: tr("call.mic.none"),
    on: tr("call.mic.mute"),
    off: tr("call.mic.unmute"),
  });
  setButton($("camera-button"), !!media.track("video"), media.enabled.video, {
    none: tr("call.camera.none"),
    on: tr("call.camera.off"),
    off: tr("call.camera.on"),
  });
}

async function refreshDeviceSelects() {
  const devices = await media.devices();
  for (const select of document.querySelectorAll("select[data-kind]")) {
    const kind = select.dataset.kind;
    const trackKind = kind === "videoinput" ? "video" : "audio";
    const current = media.deviceId(trackKind);
    const options = [];
    devices[kind].forEach((device, index) => {
      const fallback = kind === "videoinput" ? "call.devices.unnamed_camera" : "call.devices.unnamed_microphone";
      options.push(new Option(device.label || tr(fallback, { count: index + 1 }), device.deviceId));
    });
    if (current && !devices[kind].some((d) => d.deviceId === current)) {
      const fallback = kind === "videoinput" ? "call.devices.unnamed_camera" : "call.devices.unnamed_microphone";
      options.unshift(new Option(tr(fallback, { count: 1 }), current));
    }
    options.push(new Option(tr(kind === "videoinput" ? "call.devices.no_camera" : "call.devices.no_microphone"), ""));
    select.replaceChildren(...options);
    select.value = current;
  }
}

async function onDeviceSelected(event) {
  const select = event.target;
  const kind = select.dataset.kind === "videoinput" ? "video" : "audio";
  select.disabled = true;
  try {
    await media.switchDevice(kind, select.value);
  } catch {
    const message = tr("call.media.switch_failed");
    if (inPrejoin()) showNotice($("media-message"), message, "warning");
    else status.show(message, { kind: "error" });
  } finally {
    select.disabled = false;
    await refreshDeviceSelects();
  }
}

media.onTrackChanged = (kind, track) => {
  refreshLocalViews();
  if (peer) peer.replaceLocalTrack(kind, track).catch(() => {});
  sendMediaState(); // a device switched to "none" is off for the others
};

const MEDIA_PROBLEMS = {
  insecure: "call.media.insecure",
  denied: "call.media.denied",
  missing: "call.media.missing",
  no_camera: "call.media.no_camera",
  no_microphone: "call.media.no_microphone",
  busy: "call.media.busy",
  failed: "call.media.failed",
};

async function startPreview() {
  showNotice($("media-message"), tr("call.media.checking"), "info");
  const { problem } = await media.start();
  if (state === "left") {
    media.stop();
    return;
  }
  showNotice($("media-message"), problem ? tr(MEDIA_PROBLEMS[problem]) : "", "warning");
  refreshLocalViews();
  await refreshDeviceSelects();
  if (navigator.mediaDevices && navigator.mediaDevices.addEventListener) {
    navigator.mediaDevices.addEventListener("devicechange", () => refreshDeviceSelects());
  }
}

// ---------------------------------------------------------------- joining

function readName() {
  const input = $("name-input");
  const name = input.value.trim();
  const missing = role === "citizen" && !name;
  $("name-error").hidden = !missing;
  if (missing) {
    input.setAttribute("aria-invalid", "true");
    input.focus();
    return null;
  }
  input.removeAttribute("aria-invalid");
  try {
    if (name) sessionStorage.setItem(NAME_KEY, name);
  } catch {
    // storage disabled
  }
  return name || tr(`call.name.default.${role}`);
}

function join(event) {
  event.preventDefault();
  if (state !== "prejoin") return;
  const name = readName();
  if (name === null) return;
  connect(name);
}

function connect(name) {
  selfName = name;
  if (!documents) {
    documents = new DocumentsPanel({ root: $("documents"), token, roomId: root.dataset.roomId || "", lang });
  }
  setState("joining");
  optional("join-button").disabled = true;
  optional("join-form").setAttribute("aria-busy", "true");
  showNotice($("join-error"), "");
  optional("join-status").textContent = tr("call.joining");
  signaling = new SignalingClient({
    url: signalingUrl(window.location, root.dataset.roomId || ""),
    token,
    name,
    resumeStorageKey: `sprechstunde.resume.${token}`,
    handlers: { onWelcome, onMessage, onReconnecting, onRejected, onEnded },
  });
  signaling.connect();
}

/**
 * Join the call without reloading the page (the waiting room, once an advisor admitted the citizen).
 * Uses the camera and microphone that the page already opened. Returns false if the call already began.
 */
export function startCall({ token: joinToken, roomId, role: joinRole = "citizen", name }) {
  if (!inPrejoin() || !joinToken) return false;
  token = joinToken;
  role = joinRole;
  root.dataset.token = joinToken;
  root.dataset.role = joinRole;
  if (roomId) root.dataset.roomId = roomId;
  const given = typeof name === "string" ? name.trim() : "";
  const chosen = given || tr(`call.name.default.${role}`);
  try {
    if (given) sessionStorage.setItem(NAME_KEY, given);
  } catch {
    // storage disabled
  }
  connect(chosen);
  return true;
}

/** The waiting room was left without a call: release camera and microphone. */
export function stopMedia() {
  if (!inPrejoin()) return;
  teardown();
  setState("left");
}

function enterCall() {
  $("prejoin").hidden = true;
  $("incall").hidden = false;
  optional("join-form").removeAttribute("aria-busy");
  optional("join-status").textContent = "";
  refreshLocalViews();
  window.scrollTo(0, 0);
  $("incall-heading").focus({ preventScroll: true });
}

function onWelcome(msg, { reconnected }) {
  participantId = msg.participant_id;
  if (msg.limits && Number.isInteger(msg.limits.chat_max_chars)) {
    chatMax = msg.limits.chat_max_chars;
    $("chat-input").maxLength = chatMax;
  }
  // A (re)welcome always comes with a fresh offer for a fresh connection.
  if (peer) peer.close();
  peer = new PeerSession({
    iceServers: msg.ice_servers,
    send: (message) => signaling && signaling.send(message),
    localTrack: (kind) => (kind === "screen" ? screenShare.localTrack() : media.track(kind)),
    onRemoteTracks: applyRemoteTracks,
    onError: (error) => {
      console.error("negotiation failed", error);
      status.show(tr("call.error.media"), { kind: "error" });
    },
    onStateChange: (connectionState) => {
      if (connectionState === "failed" && state === "in-call") {
        status.show(tr("call.error.media"), { kind: "error", sticky: true });
      }
    },
  });
  const others = (Array.isArray(msg.participants) ? msg.participants : []).filter(
    (p) => p && p.participant_id && p.participant_id !== participantId,
  );
  for (const p of others) departed.delete(p.participant_id);
  tiles.reconcile(others);
  if (others.some((p) => p.role === "advisor")) advisorWatch.clear(); // back after our own reconnect
  indicators.sync(others);
  callChat.restore(msg.chat_history, participantId); // the chat so far, each message once (call_chat.js)
  ownDisplayName = typeof msg.name === "string" && msg.name ? msg.name : displayName({ role: msg.role });
  // what this page wrote and the server never acknowledged (its node lost): again, kept once
  for (const [clientId, text] of callChat.unacknowledged()) transmitChat(clientId, text);
  const first = state === "joining";
  if (documents) documents.refresh(); // the shared list as it is now (also catches up after a reconnect)
  setState("in-call");
  sendMediaState(); // after every welcome: the server may not know it (first join, another node)
  screenShare.connected(); // still sharing after a reconnect: the new connection forwards it again
  root.classList.remove("is-reconnecting");
  if (first) {
    enterCall();
    status.show(tr("call.status.connected"));
  } else if (reconnected) {
    status.show(tr("call.status.reconnected"));
  }
  // "consultation-ended" may have come while this page was away: ask once the connection is back
  if (reconnected && role === "citizen") {
    endedMeanwhile(root.dataset.roomId || "", token).then((endToken) => {
      if (endToken && state !== "left") consultationOver(() => showEnding({ endToken }));
    });
  }
}

function applyRemoteTracks(byParticipant) {
  for (const [id, tracks] of byParticipant) {
    if (id === participantId || departed.has(id)) continue;
    if (!tiles.has(id)) tiles.upsert({ participant_id: id });
    tiles.setTracks(id, tracks);
  }
  for (const id of tiles.ids()) {
    if (!byParticipant.has(id)) tiles.setTracks(id, {});
  }
  screenShare.showRemote(new Map([...byParticipant].filter(([id]) => !departed.has(id))), participantId);
}

function onMessage(msg) {
  switch (msg.type) {
    case "offer":
      if (peer && typeof msg.sdp === "string") peer.handleOffer(msg);
      break;
    case "candidate":
      if (peer) peer.addRemoteCandidate(msg.candidate);
      break;
    case "participant-joined": {
      const p = msg.participant;
      if (!p || !p.participant_id || p.participant_id === participantId) break;
      departed.delete(p.participant_id);
      const known = tiles.has(p.participant_id) && tiles.info(p.participant_id).name;
      tiles.upsert(p);
      if (p.role === "advisor") advisorWatch.clear();
      indicators.sync([p]);
      if (!known) status.show(tr("call.status.joined", { name: displayName(p) }));
      break;
    }
    case "participant-left": {
      const id = msg.participant_id;
      const info = tiles.info(id) || {};
      departed.add(id);
      tiles.remove(id);
      // `replaced`: the same link connected again (a reload, another tab); its participant-joined follows
      if (msg.reason === "replaced") break;
      if (role === "citizen" && info.role === "advisor") advisorWatch.update(advisorsInCall());
      const key = msg.reason === "timeout" ? "call.status.timeout"
        : msg.reason === "expired" ? "call.status.expired" : "call.status.left";
      status.show(tr(key, { name: displayName(info) }));
      break;
    }
    case "media-state": {
      if (typeof msg.participant_id !== "string" || msg.participant_id === participantId) break;
      announceMedia(msg.participant_id, indicators.setMedia(msg.participant_id, msg), msg);
      break;
    }
    case "document-added":
    case "document-removed":
      if (documents) documents.handleEvent(msg);
      break;
    case "chat": {
      if (typeof msg.id === "string") chatRequests.delete(msg.id);
      if (callChat.acknowledge(msg)) break; // own message, now kept (shown since it was sent)
      const shown = callChat.show(msg, participantId);
      const own = msg.from === participantId;
      // a phone's chat is hidden behind its toggle, and so is its live log: the status line says it
      if (shown && !own && chatToggle.hidden()) {
        const name = typeof msg.name === "string" && msg.name ? msg.name : displayName({ role: msg.role });
        const chars = Array.from(msg.text); // a long message in full stays in the chat; here its start
        const text = chars.length > 200 ? `${chars.slice(0, 199).join("")}…` : msg.text;
        status.show(tr("call.chat.announce", { name, text }));
      }
      chatToggle.arrived(own); // the unread count on the phone's chat toggle
      break;
    }
    case "consultation-ended":
      if (role === "advisor") break; // the advisor's page goes on with the console (consultation.js)
      consultationOver(role === "citizen"
        ? () => showEnding({ roomId: root.dataset.roomId || "", joinToken: token }) : null);
      break;
    case "transferred":
      if (role === "citizen") transferred(msg);
      break;
    case "screen":
      screenShare.handleEvent(msg);
      break;
    case "error": {
      if (screenShare.handleError(msg)) break;
      if (msg.code === "replaced") {
        // This link was opened in another tab or on another device, which now holds the seat: end here
        // and never reconnect (that would take the seat back and end the other one).
        if (signaling) signaling.stop();
        signaling = null;
        end(tr("call.ended.heading"), tr("call.ended.replaced"));
        break;
      }
      const text = tr("call.status.error", { code: msg.code || "?", message: msg.message || "" });
      if (typeof msg.id === "string" && msg.id.startsWith("c-")) {
        showNotice($("chat-error"), text);
        callChat.refused(chatRequests.get(msg.id)); // not sent again: the server said why
        chatRequests.delete(msg.id);
      }
      status.show(text, { kind: "error" });
      break;
    }
    default:
      break; // answer, pong, unknown: nothing to do
  }
}

/** Say what another participant switched (the marks on the tile are seen, not heard). The server forwards
 * changes only; a participant without a known state counts as both on (docs/protocol.md, `media-state`). */
function announceMedia(id, known, now) {
  if (!tiles.has(id) || typeof now.audio !== "boolean" || typeof now.video !== "boolean") return;
  const before = known || { audio: true, video: true };
  const name = displayName(tiles.info(id) || {});
  const said = [];
  if (before.audio !== now.audio) said.push(tr(now.audio ? "call.status.remote_mic_on" : "call.status.remote_mic_off", { name }));
  if (before.video !== now.video) said.push(tr(now.video ? "call.status.remote_camera_on" : "call.status.remote_camera_off", { name }));
  if (said.length) status.show(said.join(" "));
}

function onReconnecting() {
  if (state === "left") return;
  setState("reconnecting");
  root.classList.add("is-reconnecting");
  status.show(tr("call.status.reconnecting"), { kind: "warning", sticky: true });
}

function onRejected(code) {
  const key = `call.error.${code}`;
  const text = tr(key) !== key ? tr(key) : tr("call.status.error", { code, message: "" });
  if (state === "joining") {
    signaling = null;
    setState(mode === "wait" ? "waiting" : "prejoin");
    optional("join-button").disabled = false;
    optional("join-form").removeAttribute("aria-busy");
    optional("join-status").textContent = "";
    showNotice($("join-error"), text, "error");
    return;
  }
  end(tr("call.ended.heading"), text);
}

function onEnded(code) {
  const text = code === 4001 ? tr("call.ended.replaced")
    : code === 4002 ? tr("call.status.expired") : tr("call.ended.closed");
  end(tr("call.ended.heading"), text);
}

// ---------------------------------------------------------------- leaving

function teardown() {
  if (peer) peer.close();
  peer = null;
  media.stop();
  tiles.clear();
  screenShare.clear();
  indicators.stop();
  root.classList.remove("is-reconnecting");
}

function end(heading, text) {
  teardown();
  setState("left");
  $("prejoin").hidden = true;
  $("incall").hidden = true;
  $("left").hidden = false;
  $("left-heading").textContent = heading;
  $("left-text").textContent = text;
  window.scrollTo(0, 0);
  $("left-heading").focus({ preventScroll: true });
}

function leave() {
  if (signaling) signaling.leave();
  signaling = null;
  end(tr("call.left.heading"), tr("call.left.text"));
}

/** The advisor handed the citizen to another office's queue: leave this call. The waiting page takes
 * the citizen back into line (it cancels the event); a bare join page says where they went. */
function transferred(msg) {
  const office = msg.office && typeof msg.office.name === "string" ? msg.office.name : "";
  if (signaling) signaling.leave();
  signaling = null;
  const event = new CustomEvent("call:transferred", { detail: { office }, cancelable: true });
  if (!root.dispatchEvent(event)) {
    teardown();
    setState("left");
    return;
  }
  end(tr("call.transferred.heading"), tr("call.transferred.text", { office }));
}

/** How many advisors are in the call now (the citizen's AdvisorWatch). */
function advisorsInCall() {
  return tiles.ids().filter((id) => (tiles.info(id) || {}).role === "advisor").length;
}

/** The consultation is over (docs/protocol.md "consultation-ended", or the advisor did not come back): leave
 * the room for good. The citizen sees `showScreen` (endscreen.js), a guest the plain "ended" card. */
function consultationOver(showScreen) {
  advisorWatch.clear();
  if (signaling) signaling.leave();
  signaling = null;
  if (!showScreen) {
    end(tr("call.ended.heading"), tr("call.end.closed"));
    return;
  }
  teardown();
  setState("left");
  showScreen();
}

// ---------------------------------------------------------------- chat

function sendChat(event) {
  event.preventDefault();
  const input = $("chat-input");
  const text = input.value.trim();
  showNotice($("chat-error"), "");
  if (!text) return;
  if (text.length > chatMax) {
    showNotice($("chat-error"), tr("call.chat.too_long", { max: chatMax }));
    return;
  }
  // shown at once, marked until the server has kept it; sent now, or after the next welcome when the
  // connection is away (call_chat.js)
  const clientId = callChat.pending(text, ownName());
  transmitChat(clientId, text);
  input.value = "";
  updateCounter();
}

function ownName() {
  return ownDisplayName || displayName({ role });
}

/** Send one chat message of this page (again, after a reconnect: the same `client_message_id`). */
function transmitChat(clientId, text) {
  chatSeq += 1;
  const id = `c-${chatSeq}`;
  chatRequests.set(id, clientId); // an `error` for this request refuses the message (see onMessage)
  return Boolean(signaling && signaling.send({ type: "chat", id, text, client_message_id: clientId }));
}

function updateCounter() {
  const length = $("chat-input").value.length;
  $("chat-counter").textContent = length > chatMax * 0.8 ? tr("call.chat.counter", { count: length, max: chatMax }) : "";
}

// ---------------------------------------------------------------- wiring

function wire() {
  if ($("join-form")) $("join-form").addEventListener("submit", join);
  $("name-input").addEventListener("input", () => {
    if ($("name-input").value.trim()) {
      $("name-error").hidden = true;
      $("name-input").removeAttribute("aria-invalid");
    }
  });
  for (const select of document.querySelectorAll("select[data-kind]")) {
    select.addEventListener("change", onDeviceSelected);
  }
  $("mic-button").addEventListener("click", () => {
    media.setEnabled("audio", !media.enabled.audio);
    updateControls();
    status.show(tr(media.enabled.audio ? "call.status.mic_on" : "call.status.mic_off"));
    sendMediaState();
  });
  $("camera-button").addEventListener("click", () => {
    media.setEnabled("video", !media.enabled.video);
    refreshLocalViews();
    status.show(tr(media.enabled.video ? "call.status.camera_on" : "call.status.camera_off"));
    sendMediaState();
  });
  $("devices-button").addEventListener("click", () => {
    const panel = $("devices-panel");
    panel.hidden = !panel.hidden;
    $("devices-button").setAttribute("aria-expanded", String(!panel.hidden));
    if (!panel.hidden) refreshDeviceSelects();
  });
  $("leave-button").addEventListener("click", () => confirmLeave($("leave-dialog"), leave));
  // leave without asking: the advisor's "Nächste Person" after closing the consultation (next-person.js)
  root.addEventListener("call:leave", () => {
    if (!inPrejoin() && state !== "left") leave();
  });
  $("chat-form").addEventListener("submit", sendChat);
  $("chat-input").addEventListener("keydown", (event) => {
    if (event.key === "Enter" && !event.shiftKey && !event.isComposing) {
      event.preventDefault();
      $("chat-form").requestSubmit();
    }
  });
  $("chat-input").addEventListener("input", updateCounter);
  $("rejoin-link").href = window.location.pathname;
  document.addEventListener("keydown", (event) => {
    if (event.key === "Escape" && !$("devices-panel").hidden) {
      $("devices-panel").hidden = true;
      $("devices-button").setAttribute("aria-expanded", "false");
      $("devices-button").focus();
    }
  });
}

function init() {
  wire();
  if (root.dataset.endToken) {
    // reloaded after the advisor closed the consultation: the end screen again, no camera, no join
    setState("left");
    showEnding({ endToken: root.dataset.endToken });
    return;
  }
  try {
    const saved = sessionStorage.getItem(NAME_KEY);
    if (saved && !$("name-input").value) $("name-input").value = saved;
  } catch {
    // storage disabled
  }
  if (!("RTCPeerConnection" in window) || !("WebSocket" in window)) {
    showNotice($("join-error"), tr("call.unsupported"), "error");
    optional("join-button").disabled = true;
    return;
  }
  updateControls();
  const preview = startPreview();
  startPrejoinChecks({ media, active: inPrejoin }); // microphone level and network check (prejoin.js)
  // The advisor sent here by the console (direct.js): the citizen already waits in the room, so no
  // pre-join click; the name given before (or the role's default) and the devices chosen last (media.js).
  if (mode === "join" && role === "advisor" && directJoinWanted()) {
    preview.then(() => {
      if (state === "prejoin") connect(readName());
    });
  }
}

init();
