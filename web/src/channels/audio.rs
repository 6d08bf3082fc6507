//! A voice note recorded in the desk (D6) as a provider takes it. Chromium records Opus in WebM
//! (`MediaRecorder` offers no Ogg there), while WhatsApp takes voice as Opus in Ogg only: the
//! Opus packets are moved from one container to the other, unchanged (no decoding, so nothing is
//! lost and it costs a copy).
//!
//! WebM is read as MediaRecorder writes it — an EBML header, one Segment and Clusters of unknown
//! size, SimpleBlocks without lacing on one audio track — by walking elements and descending
//! into the few containers that matter, so unknown sizes need no special case. Ogg is written
//! per RFC 3533 and RFC 7845: the `OpusHead` of the track, an `OpusTags`, then one packet per
//! page with its granule position in 48 kHz samples.

/// Why a recording could not be converted.
#[derive(Debug, PartialEq, Eq)]
pub enum Unconvertible {
    /// Not WebM, or cut short.
    Malformed(&'static str),
    /// WebM without an Opus track.
    NotOpus,
}

const EBML: u32 = 0x1A45_DFA3;
const SEGMENT: u32 = 0x1853_8067;
const TRACKS: u32 = 0x1654_AE6B;
const TRACK_ENTRY: u32 = 0xAE;
const TRACK_NUMBER: u32 = 0xD7;
const CODEC_ID: u32 = 0x86;
const CODEC_PRIVATE: u32 = 0x63A2;
const CLUSTER: u32 = 0x1F43_B675;
const BLOCK_GROUP: u32 = 0xA0;
const BLOCK: u32 = 0xA1;
const SIMPLE_BLOCK: u32 = 0xA3;

/// Most packets read from one recording (about 33 minutes of 20 ms packets): a bound on work.
const MAX_PACKETS: usize = 100_000;

/// The Opus packets of a WebM recording as an Ogg Opus file.
pub fn webm_opus_to_ogg(webm: &[u8]) -> Result<Vec<u8>, Unconvertible> {
    let track = read_webm(webm)?;
    Ok(write_ogg(&track.head, &track.packets))
}

struct OpusTrack<'a> {
    head: Vec<u8>,
    packets: Vec<&'a [u8]>,
}

/// An EBML variable-length integer at `at`: its value (with the length marker removed when
/// `strip`) and its length; `None` for the reserved "unknown" size.
fn vint(data: &[u8], at: usize, strip: bool) -> Result<(Option<u64>, usize), Unconvertible> {
    let first = *data.get(at).ok_or(Unconvertible::Malformed("cut short"))?;
    let len = first.leading_zeros() as usize + 1;
    if len > 8 {
        return Err(Unconvertible::Malformed("bad variable-length integer"));
    }
    let bytes = data.get(at..at + len).ok_or(Unconvertible::Malformed("cut short"))?;
    let mut value = u64::from(if strip { first & (0xFFu16 >> len) as u8 } else { first });
    for b in &bytes[1..] {
        value = (value << 8) | u64::from(*b);
    }
    let all_ones = strip && value == (1u64 << (7 * len)) - 1;
    Ok((if all_ones { None } else { Some(value) }, len))
}

fn read_webm(data: &[u8]) -> Result<OpusTrack<'_>, Unconvertible> {
    let (id, _) = vint(data, 0, false)?;
    if id != Some(u64::from(EBML)) {
        return Err(Unconvertible::Malformed("not WebM"));
    }
    let (mut at, mut head, mut opus_track) = (0, None, None);
    let mut packets = Vec::new();
    while at < data.len() {
        let (id, id_len) = vint(data, at, false)?;
        let id = id.unwrap_or(0) as u32;
        let (size, size_len) = vint(data, at + id_len, true)?;
        let body = at + id_len + size_len;
        let end = match size {
            Some(n) => body.saturating_add(usize::try_from(n).unwrap_or(usize::MAX)),
            None => data.len(),
        };
        match id {
            // Containers: read their children next.
            SEGMENT | TRACKS | CLUSTER | BLOCK_GROUP => {
                at = body;
                continue;
            }
            TRACK_ENTRY => {
                // A track's settings are its children; decide when the next element follows it.
                let (mut entry_track, mut entry_opus, mut entry_private) = (None, false, None::<&[u8]>);
                let entry_end = end;
                if entry_end > data.len() {
                    return Err(Unconvertible::Malformed("cut short"));
                }
                let mut inner = body;
                while inner < entry_end {
                    let (cid, cid_len) = vint(data, inner, false)?;
                    let (csize, csize_len) = vint(data, inner + cid_len, true)?;
                    let cbody = inner + cid_len + csize_len;
                    let cend = cbody.saturating_add(usize::try_from(csize.unwrap_or(0)).unwrap_or(usize::MAX));
                    let value = data.get(cbody..cend).ok_or(Unconvertible::Malformed("cut short"))?;
                    match cid.unwrap_or(0) as u32 {
                        TRACK_NUMBER => entry_track = Some(value.iter().fold(0u64, |n, b| (n << 8) | u64::from(*b))),
                        CODEC_ID => entry_opus = value == b"A_OPUS",
                        CODEC_PRIVATE => entry_private = Some(value),
                        _ => {}
                    }
                    inner = cend;
                }
                if entry_opus && opus_track.is_none() {
                    opus_track = entry_track;
                    head = entry_private.map(<[u8]>::to_vec);
                }
            }
            SIMPLE_BLOCK | BLOCK => {
                let block = data.get(body..end).ok_or(Unconvertible::Malformed("cut short"))?;
                let (track, track_len) = vint(block, 0, true)?;
                let flags = *block.get(track_len + 2).ok_or(Unconvertible::Malformed("cut short"))?;
                if flags & 0x06 != 0 {
                    return Err(Unconvertible::Malformed("laced blocks"));
                }
                if track.is_some() && track == opus_track {
                    let frame = &block[track_len + 3..];
                    if !frame.is_empty() {
                        packets.push(frame);
                    }
                    if packets.len() > MAX_PACKETS {
                        return Err(Unconvertible::Malformed("too long"));
                    }
                }
            }
            _ => {}
        }
        if size.is_none() {
            // An unknown-size element that is not a container: nothing can follow it.
            break;
        }
        at = end;
    }
    if opus_track.is_none() {
        return Err(Unconvertible::NotOpus);
    }
    // MediaRecorder writes the OpusHead; a file without one gets the standard mono header.
    let head = head.filter(|h| h.starts_with(b"OpusHead") && h.len() >= 19).unwrap_or_else(|| {
        let mut h = b"OpusHead".to_vec();
        h.extend_from_slice(&[1, 1, 0x38, 0x01, 0x80, 0xBB, 0, 0, 0, 0, 0]);
        h
    });
    Ok(OpusTrack { head, packets })
}

/// Samples (at 48 kHz) an Opus packet decodes to, from its TOC byte (RFC 6716, 3.1).
fn samples(packet: &[u8]) -> u64 {
    let Some(&toc) = packet.first() else { return 0 };
    let config = toc >> 3;
    // Frame length in units of 2.5 ms.
    let units: u64 = match config {
        0..=11 => [4, 8, 16, 24][usize::from(config % 4)],
        12..=15 => [4, 8][usize::from(config % 2)],
        _ => [1, 2, 4, 8][usize::from(config % 4)],
    };
    let frames = match toc & 0x03 {
        0 => 1,
        1 | 2 => 2,
        _ => u64::from(packet.get(1).map_or(0, |b| b & 0x3F)),
    };
    frames * units * 120
}

fn write_ogg(head: &[u8], packets: &[&[u8]]) -> Vec<u8> {
    let serial: u32 = 0x4F6D_6E69;
    let mut out = Vec::with_capacity(packets.iter().map(|p| p.len() + 40).sum::<usize>() + 128);
    let mut tags = b"OpusTags".to_vec();
    let vendor = b"Omniroute";
    tags.extend_from_slice(&(vendor.len() as u32).to_le_bytes());
    tags.extend_from_slice(vendor);
    tags.extend_from_slice(&0u32.to_le_bytes());
    page(&mut out, serial, 0, 0x02, 0, head);
    page(&mut out, serial, 1, 0, 0, &tags);
    let mut granule = 0u64;
    for (i, p) in packets.iter().enumerate() {
        granule += samples(p);
        let last = i + 1 == packets.len();
        page(&mut out, serial, i as u32 + 2, if last { 0x04 } else { 0 }, granule, p);
    }
    if packets.is_empty() {
        page(&mut out, serial, 2, 0x04, 0, &[]);
    }
    out
}

/// One Ogg page holding one whole packet.
fn page(out: &mut Vec<u8>, serial: u32, sequence: u32, flags: u8, granule: u64, packet: &[u8]) {
    let start = out.len();
    out.extend_from_slice(b"OggS");
    out.push(0);
    out.push(flags);
    out.extend_from_slice(&granule.to_le_bytes());
    out.extend_from_slice(&serial.to_le_bytes());
    out.extend_from_slice(&sequence.to_le_bytes());
    out.extend_from_slice(&[0; 4]);
    // Lacing: 255-byte segments, then the rest (a 0 when the packet is a multiple of 255).
    let segments = packet.len() / 255 + 1;
    out.push(segments.min(255) as u8);
    out.extend(std::iter::repeat_n(255u8, segments - 1));
    out.push((packet.len() % 255) as u8);
    out.extend_from_slice(packet);
    let crc = crc32(&out[start..]);
    out[start + 22..start + 26].copy_from_slice(&crc.to_le_bytes());
}

/// Ogg's CRC-32: polynomial 0x04C11DB7, no reflection, zero initial value and final XOR.
fn crc32(data: &[u8]) -> u32 {
    static TABLE: std::sync::OnceLock<[u32; 256]> = std::sync::OnceLock::new();
    let table = TABLE.get_or_init(|| {
        let mut t = [0u32; 256];
        for (i, entry) in t.iter_mut().enumerate() {
            let mut r = (i as u32) << 24;
            for _ in 0..8 {
                r = if r & 0x8000_0000 != 0 { (r << 1) ^ 0x04C1_1DB7 } else { r << 1 };
            }
            *entry = r;
        }
        t
    });
    data.iter().fold(0u32, |crc, b| (crc << 8) ^ table[((crc >> 24) as u8 ^ b) as usize])
}

#[cfg(test)]
mod tests {
    use super::*;

    fn element(id: &[u8], body: &[u8]) -> Vec<u8> {
        // An 8-byte size: the marker, then the length in 7 bytes.
        let mut e = id.to_vec();
        e.push(0x01);
        e.extend_from_slice(&(body.len() as u64).to_be_bytes()[1..]);
        e.extend_from_slice(body);
        e
    }

    /// A WebM as MediaRecorder writes it: Segment and Cluster of unknown size.
    fn recording(packets: &[&[u8]]) -> Vec<u8> {
        let mut head = b"OpusHead".to_vec();
        head.extend_from_slice(&[1, 1, 0x38, 0x01, 0x80, 0xBB, 0, 0, 0, 0, 0]);
        let mut entry = element(&[0xD7], &[1]);
        entry.extend(element(&[0x86], b"A_OPUS"));
        entry.extend(element(&[0x63, 0xA2], &head));
        let tracks = element(&[0x16, 0x54, 0xAE, 0x6B], &element(&[0xAE], &entry));
        let mut webm = element(&[0x1A, 0x45, 0xDF, 0xA3], &element(&[0x42, 0x82], b"webm"));
        webm.extend_from_slice(&[0x18, 0x53, 0x80, 0x67, 0x01, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF]);
        webm.extend(tracks);
        webm.extend_from_slice(&[0x1F, 0x43, 0xB6, 0x75, 0x01, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF]);
        webm.extend(element(&[0xE7], &[0]));
        for (i, p) in packets.iter().enumerate() {
            let mut block = vec![0x81, 0, i as u8, 0x80];
            block.extend_from_slice(p);
            webm.extend(element(&[0xA3], &block));
        }
        webm
    }

    /// The pages of an Ogg file: (flags, granule, sequence, packet), each CRC checked.
    fn pages(ogg: &[u8]) -> Vec<(u8, u64, u32, Vec<u8>)> {
        let mut out = Vec::new();
        let mut at = 0;
        while at < ogg.len() {
            assert_eq!(&ogg[at..at + 4], b"OggS");
            let n = ogg[at + 26] as usize;
            let lacing = &ogg[at + 27..at + 27 + n];
            let len: usize = lacing.iter().map(|&l| l as usize).sum();
            let end = at + 27 + n + len;
            let mut copy = ogg[at..end].to_vec();
            let crc = u32::from_le_bytes(copy[22..26].try_into().unwrap());
            copy[22..26].copy_from_slice(&[0; 4]);
            assert_eq!(crc32(&copy), crc, "page {} checksum", out.len());
            let granule = u64::from_le_bytes(ogg[at + 6..at + 14].try_into().unwrap());
            let seq = u32::from_le_bytes(ogg[at + 18..at + 22].try_into().unwrap());
            out.push((ogg[at + 5], granule, seq, ogg[at + 27 + n..end].to_vec()));
            at = end;
        }
        out
    }

    #[test]
    fn ogg_crc_matches_the_known_check_value() {
        // CRC-32/POSIX (check value 0x765E7680) without its final XOR, which is Ogg's.
        assert_eq!(crc32(b"123456789"), 0x89A1_897F);
    }

    #[test]
    fn opus_packets_move_from_webm_to_ogg_unchanged_with_their_granules() {
        // Two 20 ms CELT packets (config 31) and one with two 20 ms frames (code 1), one of 300 bytes.
        let a = [0xF8u8, 1, 2, 3];
        let b = [0xF9u8; 300];
        let ogg = webm_opus_to_ogg(&recording(&[&a, &b])).unwrap();
        let p = pages(&ogg);
        assert_eq!(p.len(), 4);
        assert_eq!((p[0].0, p[0].2), (0x02, 0), "OpusHead opens the stream");
        assert!(p[0].3.starts_with(b"OpusHead"));
        assert!(p[1].3.starts_with(b"OpusTags"));
        assert_eq!((p[2].1, p[2].3.as_slice()), (960, &a[..]));
        assert_eq!((p[3].0, p[3].1, p[3].3.as_slice()), (0x04, 960 + 1920, &b[..]), "the last page ends it");
    }

    #[test]
    fn other_files_are_refused_not_misread() {
        assert_eq!(webm_opus_to_ogg(b"OggS....").unwrap_err(), Unconvertible::Malformed("not WebM"));
        let mut cut = recording(&[&[0xF8, 1]]);
        cut.truncate(cut.len() - 3);
        assert!(webm_opus_to_ogg(&cut).is_err());
        assert!(webm_opus_to_ogg(&[]).is_err());
    }
}
