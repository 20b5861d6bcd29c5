//! Integration tests of the App: the real server on port 0, the GitHub emulator, moto as STS.

mod flood;
mod helpers;
mod secrets;
mod setup;
mod tokens;
mod webhooks;
