mod backchannel;
mod callback_rejections;
mod helpers;
mod login;
mod pages;
mod proxy;
mod replicas;
mod upstream;
