use super::*;

/// Feeds `input` in pieces of `step` bytes; returns (consumed, payload, done).
fn run(input: &[u8], step: usize) -> Result<(usize, Vec<u8>, bool), InvalidChunk> {
    let (consumed, payload, done, _) = relay(input, step)?;
    Ok((consumed, payload, done))
}

/// As `run`, plus the bytes that go on (passed pieces, then the trailer section).
fn relay(input: &[u8], step: usize) -> Result<(usize, Vec<u8>, bool, Vec<u8>), InvalidChunk> {
    let mut decoder = Decoder::default();
    let (mut consumed, mut payload, mut sent) = (0, Vec::new(), Vec::new());
    for piece in input.chunks(step) {
        let progress = decoder.advance(piece, |r| payload.extend_from_slice(&piece[r]))?;
        assert!(progress.pass <= progress.consumed);
        sent.extend_from_slice(&piece[..progress.pass]);
        consumed += progress.consumed;
        if progress.done {
            assert_eq!(decoder.payload, payload.len() as u64);
            sent.extend_from_slice(decoder.trailer_section());
            return Ok((consumed, payload, true, sent));
        }
    }
    Ok((consumed, payload, false, sent))
}

#[test]
fn chunks_extensions_and_trailers_at_any_split() {
    let body = b"5;name=value\r\nhello\r\n6 ; a=\"b c\"\r\n world\r\n0\r\nX-Trailer: t\r\n\r\nNEXT";
    for step in [1, 2, 3, 7, body.len()] {
        let (consumed, payload, done, sent) = relay(body, step).unwrap();
        assert!(done, "step {step}");
        assert_eq!(consumed, body.len() - 4, "step {step}");
        assert_eq!(payload, b"hello world");
        assert_eq!(sent, &body[..body.len() - 4], "step {step}");
    }
    let (_, payload, done) = run(b"A\r\n0123456789\r\n0\r\n\r\n", 4).unwrap();
    assert_eq!((payload.as_slice(), done), (&b"0123456789"[..], true));
}

#[test]
fn framing_fields_are_dropped_from_trailers() {
    let body = b"1\r\na\r\n0\r\nContent-Length: 5\r\nX-Kept:  k \r\nTransfer-Encoding: chunked\r\n\
        Host: other\r\nConnection: close\r\n\r\n";
    for step in [1, 5, body.len()] {
        let (_, _, done, sent) = relay(body, step).unwrap();
        assert!(done);
        assert_eq!(sent, b"1\r\na\r\n0\r\nX-Kept: k\r\n\r\n", "step {step}");
    }
    let mut out = b"head".to_vec();
    assert_eq!(Decoder::copy_whole(body, &mut out), Ok(body.len()));
    assert_eq!(out, b"head1\r\na\r\n0\r\nX-Kept: k\r\n\r\n");
    assert_eq!(
        Decoder::copy_whole(b"1\r\na\r\n", &mut out),
        Err(InvalidChunk)
    );
}

#[test]
fn incomplete_bodies_are_not_done() {
    let (consumed, _, done) = run(b"5\r\nhel", 2).unwrap();
    assert_eq!((consumed, done), (6, false));
}

#[test]
fn broken_codings_are_refused() {
    for body in [
        &b"x\r\n"[..],
        b"5\r\nhelloX\r\n",
        b"5\nhello\r\n",
        b"\r\n",
        b"11111111111111111\r\n",
        b"0\r\n\rX",
        // 2^64 - 1 and 2^63: negative to a signed parser.
        b"ffffffffffffffff\r\n",
        b"8000000000000000\r\n",
        // Junk after the size, and controls in an extension.
        b"5 xyz\r\nhello\r\n0\r\n\r\n",
        b"5 \r\n;\r\nhello\r\n0\r\n\r\n",
        b"5;a\x00b\r\nhello\r\n0\r\n\r\n",
        // Trailers ended by a bare LF, then a smuggled request.
        b"0\r\n\nGET /smuggled HTTP/1.1\r\n\r\n",
        b"0\r\nX-T: 1\nGET /smuggled HTTP/1.1\r\n\r\n",
        // Trailer fields that would be refused in a head.
        b"0\r\nGET /x HTTP/1.1\r\n\r\n",
        b"0\r\nX Y: 1\r\n\r\n",
        b"0\r\nX-Y : 1\r\n\r\n",
        b"0\r\nX-Y: 1\r\n folded\r\n\r\n",
        b"0\r\nX-Y: a\x00b\r\n\r\n",
        b"0\r\nX-Y: a\rb\r\n\r\n",
        b"0\r\n: empty\r\n\r\n",
    ] {
        assert_eq!(
            run(body, 1),
            Err(InvalidChunk),
            "{:?}",
            String::from_utf8_lossy(body)
        );
    }
    let long_extension = [b"1;".as_slice(), &[b'a'; 5000]].concat();
    assert_eq!(run(&long_extension, 100), Err(InvalidChunk));
    let long_trailers = [b"0\r\nX: ".as_slice(), &[b'a'; MAX_TRAILERS]].concat();
    assert_eq!(run(&long_trailers, 100), Err(InvalidChunk));
}

#[test]
fn sizes_up_to_2_pow_63_minus_1_and_leading_zeros_are_read() {
    let mut decoder = Decoder::default();
    let progress = decoder.advance(b"7fffffffffffffff\r\nabc", |_| {});
    assert_eq!(progress.map(|p| p.done), Ok(false));
    assert_eq!(run(b"0005\r\nhello\r\n0\r\n\r\n", 1).map(|r| r.2), Ok(true));
}

#[test]
fn long_extensions_on_tiny_chunks_run_out_of_allowance() {
    let chunk = [b"1;".as_slice(), &[b'e'; 4000], b"\r\nx\r\n"].concat();
    let body: Vec<u8> = chunk.repeat(5);
    assert_eq!(run(&body, 512), Err(InvalidChunk));
    // A signature on every 8 KiB chunk (aws-chunked) stays within it however long the body.
    let signature = format!(";chunk-signature={}", "f".repeat(64));
    let data = vec![b'd'; 8192];
    let mut body = Vec::new();
    for _ in 0..200 {
        body.extend_from_slice(format!("2000{signature}\r\n").as_bytes());
        body.extend_from_slice(&data);
        body.extend_from_slice(b"\r\n");
    }
    body.extend_from_slice(format!("0{signature}\r\n\r\n").as_bytes());
    assert_eq!(run(&body, 4096).map(|r| r.2), Ok(true));
}

#[test]
fn input_that_stops_inside_a_size_line_says_so() {
    let inside = |input: &[u8]| {
        let mut decoder = Decoder::default();
        decoder.advance(input, |_| {}).unwrap();
        decoder.is_inside_size_line()
    };
    assert!(!inside(b""));
    assert!(inside(b"5"));
    assert!(inside(b"5;ext"));
    assert!(inside(b"5\r"));
    assert!(!inside(b"5\r\nhel"));
    assert!(!inside(b"5\r\nhello\r\n"));
    assert!(inside(b"5\r\nhello\r\n1;e"));
    assert!(!inside(b"0\r\nX-T"));
}
