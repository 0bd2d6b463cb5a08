mod backchannel;
mod bad_input;
#[path = "../common/binary.rs"]
mod binary;
mod callback_rejections;
mod drills;
mod hardening;
mod helpers;
mod login;
mod oidc_provider;
mod pages;
mod proxy;
mod replicas;
mod session_cache;
mod sessions;
mod tasks;
mod upstream;
