# ruff: noqa: E501 — EXPECTED is a table of qualified names and full SHA-256 digests, one per line
"""The start-up check: the installed aiortc and aioice are exactly the sources this fork was written against.

The fork (this package, and media/rtp_header.py) replaces or mirrors private aiortc/aioice functions and
reaches their private fields. A release may change any of them without notice, so a check by name is not
enough: `check()` compares the SHA-256 of the source (`inspect.getsource`) of every function and class
the fork lists in its modules' `MIRRORS` with `EXPECTED`, taken from the pinned releases, and refuses to
start, naming each one that differs. After an upgrade: read the diff of each named source against the
mirror in this package, adapt it, then update `PINNED` and `EXPECTED` (`python -m
sprechstunde.media.aiortc_fork.check` prints the current table).
"""

from __future__ import annotations

import hashlib
import importlib
import inspect
from typing import Any

import aioice
import aiortc

from sprechstunde.media import rtp_header
from sprechstunde.media.aiortc_fork import clock, coroutines, estimator, receiver, sender, transport

PINNED = {"aiortc": "1.16.0", "aioice": "0.13.0"}
MODULES = (receiver, sender, estimator, transport, clock, coroutines, rtp_header)

EXPECTED: dict[str, str] = {  # for PINNED
    "aioice.ice:Connection.__init__": "a99ae9c97fc66a2ef38e4200009886edfd83a6cb78601a7c8925b94b2bd18b31",
    "aioice.ice:Connection._add_remote_candidate": "829722cc3b13d3c165751ce3fea74aa34828f404c0fc3c5aab000e71814f498a",
    "aioice.ice:Connection.add_remote_candidate": "d3a0826c92fa8ce69e627ea6d9870c3486f5bced964f0a0e9767619895c82921",
    "aioice.ice:Connection.data_received": "5631b17fab717d6b9a956b775d6f5580a50c2419dc6ef693286a98355e98a253",
    "aioice.ice:Connection.gather_candidates": "d33db28d4d1e49ffe863eb34098e4a4a73a7cc5725e0da821e1fb94d7ade8cbb",
    "aioice.ice:Connection.request_received": "dcdc9a3862c1a0b4d20d99c8836f3246d6214045056a4923bdfd9ff26bb8bbf2",
    "aioice.ice:Connection.send": "8f91d54578f0ca744bbbe516af0f1a80cc4c042fed01b417657692ee0434c855",
    "aioice.ice:Connection.sendto": "bf162ec03bdce2cc2b9602cd47a03aa70b15b45383da4d0618090e65179f7e85",
    "aioice.ice:StunProtocol.datagram_received": "ff4c8b910d45fb3a9e50c4391fe5cbaba33dcba669fea9e847e19a5c99b9bfbb",
    "aioice.ice:StunProtocol.send_data": "8bfbce074a897482d13dba6bf49ff6f09e48f84327143b801a3a12d2e43de358",
    "aioice.ice:get_host_addresses": "d4a54f9a68c39ff1bed532e76bd148cf1530aeb35b9be32900b53e234b78ae4f",
    "aiortc.clock:current_datetime": "16e480606306c8a460186b11cf32d1e893ddbe87f2d232c531f3d60b05c00f54",
    "aiortc.clock:current_ms": "bc69ad1e4d368eb97fffd84f33ae2cd35dd11e25bdcfad7323ba875232ef9ee9",
    "aiortc.clock:current_ntp_time": "b7dedc576383cdcaee3de77f3d5edc2637ad51443f0da4fad428b87ecf15badc",
    "aiortc.codecs.vpx:VpxPayloadDescriptor": "2cc184cd310bd30c4c51d991dc7f57a9d81db267fbbd24c0b36124c5b2aaa806",
    "aiortc.codecs.vpx:vp8_depayload": "6f1f7fca182206c0bff643c53b38b92622c65dd7d0529160fcef8276ef9fba31",
    "aiortc.codecs:depayload": "8b0e13b90b62b0963c32f2a4dcf533980cd6f9fbbaecfae1be44f04fc4601637",
    "aiortc.codecs:is_rtx": "fa7e17cf1dfe7e29f2d6a6ee190603e7924f5e26cfb4073f77d5d33fb0289a27",
    "aiortc.jitterbuffer:JitterBuffer": "17030fbb0982258d8d61611500b707370579994f222fae610c353c5de5b1ed59",
    "aiortc.jitterbuffer:JitterFrame": "387bd33b13a7f10aa2eb3d751b912e2280735572bd300c63f8d88a43f8f1c7b3",
    "aiortc.rate:AimdRateControl": "ee1addbf438d8155d3f117e16bfa406bacc113356695c1324555363ab99eba32",
    "aiortc.rate:InterArrival": "6a4f6ea6e1786add9210d3d006d803c6dca74967857950e984576379254d72db",
    "aiortc.rate:InterArrivalDelta": "f8b3bcb98ff520c854d0b5f75d1e974502f424fcde237b70104c00446e123998",
    "aiortc.rate:OveruseEstimator": "1b468219a69d64a8a947464852f04ebe1f669e33f4978b51d26166aac82bf1e1",
    "aiortc.rate:RateBucket": "c2c6d114ba1d3fd3e86254b0efa745938043aeb1679ea8a0b17dfca21bd806af",
    "aiortc.rate:RateCounter": "07a0d63e5d1a328944df287e6095320c0513b376a1ccc39d5f9ddde5ead990e7",
    "aiortc.rate:RemoteBitrateEstimator": "287ad89d380234e976f446c3a9e7b131f48a2d6df7cd6559976f82b99cb4ebc1",
    "aiortc.rate:TimestampGroup": "1efc2694badae1eba835248faba52a2de5aff91ad48930476e3f70a640399a43",
    "aiortc.rtcdtlstransport:RTCDtlsTransport.__init__": "3bffce6c2b56b5dcd8b69ad8886696b7229bdba43ccba39f04f662e588950320",
    "aiortc.rtcdtlstransport:RTCDtlsTransport._handle_rtcp_data": "5469e786d77b37b25e0a6ca5b7808166d0ddd0175842d8354225ee46a2ca8004",
    "aiortc.rtcdtlstransport:RTCDtlsTransport._handle_rtp_data": "5def9061cc3da1f67db719e43b0b1ee242688f231eb963cf2cb5d9696abfc9e2",
    "aiortc.rtcdtlstransport:RTCDtlsTransport._recv_next": "998076720c05aa13faadff2dfa337f6964c171fa6791789a72693e1480c74102",
    "aiortc.rtcdtlstransport:RTCDtlsTransport._send_rtp": "763b02bceb0b0ab9c08d87eb6c0852a404322aafd377d28ad4a719f7c790ed9d",
    "aiortc.rtcdtlstransport:RtpRouter": "75abd1c0faf264fb7cb8defc72f05f46a12fdce734d7a28864de057e421a899e",
    "aiortc.rtcicetransport:RTCIceGatherer.__init__": "a0d775c349927f2b9bff9c99eb1d398983e362ddadc779ac38c3e1a9f45d994d",
    "aiortc.rtcicetransport:RTCIceGatherer.gather": "147d15cd640f570e9ebc42f888ac5de498275a7c09c358c2c3eb470bc5ba95a0",
    "aiortc.rtcicetransport:RTCIceTransport.__init__": "b11403aba1c3a32ba72e4c81dc2f4bafe8be21a178e82147d20e011c44c0483c",
    "aiortc.rtcrtpreceiver:NackGenerator": "4e89418b046d6ffc603a7b8785aa1dc276a5d1fed9f8cebd27082e8660f5f08a",
    "aiortc.rtcrtpreceiver:RTCRtpReceiver._RTCRtpReceiver__stop_decoder": "108105d17e257dba61a4e9cd00e443ca32dce3d0bd7407f1af2fd9d127f10afc",
    "aiortc.rtcrtpreceiver:RTCRtpReceiver.__init__": "3e3b7b5cefbaac6f32d31c024a5ecf70093b55e60db6a3b4f4f900400688ccb9",
    "aiortc.rtcrtpreceiver:RTCRtpReceiver._handle_rtp_packet": "4e54983d021a6336d80c29490f82f9a6dd531c0d3179b2daed818120c5ece238",
    "aiortc.rtcrtpreceiver:RTCRtpReceiver._send_rtcp": "9f0bc9f6a8ddb2898d5039f3a7c60d6ceab67c0f506cb849f532c1923d0e9a25",
    "aiortc.rtcrtpreceiver:RTCRtpReceiver._send_rtcp_nack": "5735e597c91b5cf6fe1577bab8c3f17f081e9abac3122c0e48e3d21b79330744",
    "aiortc.rtcrtpreceiver:RTCRtpReceiver._send_rtcp_pli": "ae74c43d50f6eb7bd6d5d6fbafe46e507f937e651db022d04206926ed21c7184",
    "aiortc.rtcrtpreceiver:RTCRtpReceiver.receive": "d6d8d8d7a0bf4e95f3fb7cb78cf275d0a5f50c4912e0cb8498272008779916ef",
    "aiortc.rtcrtpreceiver:decoder_worker": "d500d4e567d6846c0bd1b501685ec5dd65202563280a01b25e2c014c2273c3eb",
    "aiortc.rtcrtpsender:RTCRtpSender.__init__": "beb1bc0ae04db20d6452c99825f235e80fd7a78289bc178bd508cf7351e5fddd",
    "aiortc.rtcrtpsender:RTCRtpSender._handle_rtcp_packet": "a4ee4c7355f8de7a67ae75215d25d2d34931931a33b8ad2ce89ba2d9a24fc704",
    "aiortc.rtcrtpsender:RTCRtpSender._next_encoded_frame": "89dd9fa4fb33741cc60857f1cebae31c9a88b72da9a42f91abc6090f40cb8253",
    "aiortc.rtcrtpsender:RTCRtpSender._retransmit": "ae0b2491944b52dc8ffe7035bda93b913d6e833247e4c93c4d7d68bd12d191b4",
    "aiortc.rtcrtpsender:RTCRtpSender._run_rtcp": "51e0a924eac4e39ba2f333981f298e3f16305582977c5e73fa7128e6f800ab0d",
    "aiortc.rtcrtpsender:RTCRtpSender._run_rtp": "ff597a1d554cb373e73b21775c5bf564e7dba1eab6058eeabd902e09794872a3",
    "aiortc.rtcrtpsender:RTCRtpSender._send_keyframe": "26c49629470d1928f42ffa4ea6953d6040e97f29b91379c13087416023eda0c0",
    "aiortc.rtcrtpsender:random_sequence_number": "b12c28bd2a5c6634061c17dd08ce1b49e275f259928e93aabbac4d620e8c5561",
    "aiortc.rtcrtptransceiver:RTCRtpTransceiver.__init__": "60c6da8f7de314adc3a90f2ac4a15a18974b36653acac9513b51dc6e6457a59f",
    "aiortc.rtp:HeaderExtensions": "93780084a964d646b8a88b9237dd837685e4f5406da69d5934045472bac6c519",
    "aiortc.rtp:HeaderExtensionsMap": "b2094056d6bccaa35ee9f59a91d67b43631d09154cdca33a63bde2dd88463985",
    "aiortc.rtp:RtpPacket": "5684dc74ff616690cc42991a96db3fef7441b6c99bd8189aa335d4906d5076f3",
    "aiortc.utils:random32": "ddbb26d5f4a0883ac0eaec5db6c2d08a96331f2ca42e09d39a766121ab011416",
}

_hashes: dict[Any, str] = {}  # source hash by object: each source is read once per process


def mirrored() -> dict[str, str]:
    """Every aiortc/aioice name the fork replaces or mirrors ("module:qualified.name") and why."""
    names: dict[str, str] = {}
    for module in MODULES:
        names.update(module.MIRRORS)
    return names


def resolve(name: str) -> Any:
    """The function or class a "module:qualified.name" names."""
    module_name, _, path = name.partition(":")
    found: Any = importlib.import_module(module_name)
    for part in path.split("."):
        found = getattr(found, part)
    return found


def source_hash(obj: Any) -> str:
    """SHA-256 (hex) of an object's source text as `inspect.getsource` reads it."""
    digest = _hashes.get(obj)
    if digest is None:
        digest = _hashes[obj] = hashlib.sha256(inspect.getsource(obj).encode()).hexdigest()
    return digest


def current_hashes() -> dict[str, str]:
    """What `EXPECTED` would be for the installed aiortc/aioice."""
    return {name: source_hash(resolve(name)) for name in sorted(mirrored())}


def check() -> None:
    """Refuse to run on an aiortc/aioice whose sources differ from the ones the fork mirrors."""
    installed = {"aiortc": aiortc.__version__, "aioice": aioice.__version__}
    if installed != PINNED:
        raise RuntimeError(
            f"aiortc/aioice {installed} are not the pinned {PINNED} media/aiortc_fork/ was checked against"
        )
    changed = []
    for name in mirrored():  # a name without an expected hash counts as changed
        expected = EXPECTED.get(name)
        try:
            actual = source_hash(resolve(name))
        except (AttributeError, ImportError, OSError, TypeError):
            actual = "missing"
        if actual != expected:
            changed.append(name)
    if changed:
        raise RuntimeError(
            "aiortc/aioice internals changed; media/aiortc_fork/ replaces or mirrors these, whose source "
            "differs from the pinned release's: " + ", ".join(changed)
        )
    rtp_header.check()


if __name__ == "__main__":
    for name, digest in current_hashes().items():
        print(f'    "{name}": "{digest}",')
