//! Structured choices drawn from fuzz bytes, for the targets that build their input
//! (a JWT from header and claim variations) rather than read it as text. Running out
//! of bytes is not an error: every draw then yields its first choice (or zero), so any
//! input, even an empty one, makes a complete case.

/// A cursor over the fuzz bytes.
#[derive(Debug)]
pub struct Draw<'a> {
    /// The bytes not drawn yet.
    rest: &'a [u8],
}

impl<'a> Draw<'a> {
    /// Starts drawing from `data`.
    pub fn new(data: &'a [u8]) -> Self {
        Self { rest: data }
    }

    /// One byte (zero once the input is used up).
    pub fn byte(&mut self) -> u8 {
        match self.rest.split_first() {
            Some((&b, rest)) => {
                self.rest = rest;
                b
            }
            None => 0,
        }
    }

    /// One of `choices`, by the next byte.
    pub fn pick<T: Copy>(&mut self, choices: &[T]) -> T {
        choices[usize::from(self.byte()) % choices.len()]
    }

    /// A flag that is true one time in `n` (by the next byte).
    pub fn one_in(&mut self, n: u8) -> bool {
        self.byte().is_multiple_of(n)
    }

    /// Eight bytes as an `i64`.
    pub fn i64(&mut self) -> i64 {
        let mut b = [0u8; 8];
        for x in &mut b {
            *x = self.byte();
        }
        i64::from_le_bytes(b)
    }

    /// Up to `max` bytes, the length given by the next byte, as (lossy) UTF-8.
    pub fn text(&mut self, max: usize) -> String {
        let len = usize::from(self.byte()).min(max).min(self.rest.len());
        let (head, rest) = self.rest.split_at(len);
        self.rest = rest;
        String::from_utf8_lossy(head).into_owned()
    }
}
