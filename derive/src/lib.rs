//! `#[derive(shmq::Pod)]`. Use it through the `shmq` crate (`shmq::Pod`), whose `pod` module
//! documents what it checks and the layout fingerprint it computes; the expansion names only
//! `::shmq`, so a crate that depends on `shmq` alone can use it.

use proc_macro2::{Span, TokenStream};
use quote::{quote, quote_spanned};
use syn::ext::IdentExt;
use syn::spanned::Spanned;
use syn::{Data, DeriveInput, Error, Fields, LitStr, parse_macro_input, parse_quote};

/// Implements `shmq::Pod` for a `#[repr(C)]` or `#[repr(transparent)]` struct whose fields
/// are all `Pod` and that has no padding; `#[shmq(tag = "name.v1")]` gives it an explicit
/// identity. See the `shmq::pod` module.
#[proc_macro_derive(Pod, attributes(shmq))]
pub fn derive_pod(input: proc_macro::TokenStream) -> proc_macro::TokenStream {
    let input = parse_macro_input!(input as DeriveInput);
    expand(input)
        .unwrap_or_else(Error::into_compile_error)
        .into()
}

fn expand(mut input: DeriveInput) -> syn::Result<TokenStream> {
    let name = &input.ident;
    let fields = match &input.data {
        Data::Struct(s) => s.fields.clone(),
        Data::Enum(e) => {
            return Err(Error::new(
                e.enum_token.span,
                "shmq::Pod cannot be derived for an enum: not every bit pattern is a valid \
                 variant; store the discriminant as an integer field instead",
            ));
        }
        Data::Union(u) => {
            return Err(Error::new(
                u.union_token.span,
                "shmq::Pod cannot be derived for a union; use a byte array field instead",
            ));
        }
    };
    check_repr(&input)?;
    let tag = tag_of(&input)?;

    // Every type parameter must be Pod itself.
    for p in input.generics.type_params_mut() {
        p.bounds.push(parse_quote!(::shmq::Pod));
    }
    let (impl_generics, ty_generics, where_clause) = input.generics.split_for_impl();

    let members: Vec<(String, TokenStream, &syn::Type)> = match &fields {
        Fields::Named(named) => named
            .named
            .iter()
            .map(|f| {
                let ident = f.ident.as_ref().expect("named field");
                (ident.unraw().to_string(), quote!(#ident), &f.ty)
            })
            .collect(),
        Fields::Unnamed(unnamed) => unnamed
            .unnamed
            .iter()
            .enumerate()
            .map(|(i, f)| {
                let index = syn::Index::from(i);
                (i.to_string(), quote!(#index), &f.ty)
            })
            .collect(),
        Fields::Unit => Vec::new(),
    };

    let sizes = members
        .iter()
        .map(|(_, _, ty)| quote_spanned!(ty.span()=> + ::core::mem::size_of::<#ty>()));
    let entries = members.iter().map(|(text, member, ty)| {
        quote_spanned! {ty.span()=>
            ::shmq::pod::Field {
                name: #text,
                offset: ::core::mem::offset_of!(Self, #member),
                shape: &<#ty as ::shmq::Pod>::SHAPE,
            }
        }
    });
    let padding = format!(
        "`{name}` has padding bytes, which shmq::Pod does not allow (their contents would be \
         undefined): reorder the fields or add explicit padding fields such as `_pad: [u8; N]`"
    );
    let tag_item = tag.map(|t| quote!(const TAG: ::core::option::Option<&'static str> = ::core::option::Option::Some(#t);));
    // A non-generic type is checked where it is declared; a generic one where it is used.
    let eager = input.generics.params.is_empty().then(|| {
        quote! {
            const _: () = {
                let _ = <#name as ::shmq::Pod>::SHAPE;
            };
        }
    });
    Ok(quote! {
        // SAFETY (of the generated impl): the type is repr(C) or repr(transparent) (checked by
        // the derive), every field is Pod (the SHAPE below names `<F as Pod>::SHAPE` for each,
        // which does not compile otherwise), and its size is the sum of its fields' sizes
        // (asserted below when SHAPE is evaluated), so it has no padding; Pod fields have no
        // UnsafeCell and accept every bit pattern, so the struct does too.
        #[automatically_derived]
        unsafe impl #impl_generics ::shmq::Pod for #name #ty_generics #where_clause {
            const SHAPE: ::shmq::pod::Shape = {
                ::core::assert!(
                    ::core::mem::size_of::<Self>() == 0 #(#sizes)*,
                    #padding
                );
                ::shmq::pod::Shape::Struct(&[#(#entries),*])
            };
            #tag_item
        }
        #eager
    })
}

fn check_repr(input: &DeriveInput) -> syn::Result<()> {
    let mut stable = false;
    for attr in input.attrs.iter().filter(|a| a.path().is_ident("repr")) {
        attr.parse_nested_meta(|meta| {
            if meta.path.is_ident("C") || meta.path.is_ident("transparent") {
                stable = true;
            }
            // packed(N) / align(N): consume the argument; padding is checked by size.
            if meta.input.peek(syn::token::Paren) {
                let content;
                syn::parenthesized!(content in meta.input);
                let _: TokenStream = content.parse()?;
            }
            Ok(())
        })?;
    }
    if stable {
        Ok(())
    } else {
        Err(Error::new(
            Span::call_site(),
            format!(
                "shmq::Pod needs a defined layout: add #[repr(C)] (or #[repr(transparent)]) to `{}`",
                input.ident
            ),
        ))
    }
}

fn tag_of(input: &DeriveInput) -> syn::Result<Option<LitStr>> {
    let mut tag = None;
    for attr in input.attrs.iter().filter(|a| a.path().is_ident("shmq")) {
        attr.parse_nested_meta(|meta| {
            if meta.path.is_ident("tag") {
                let lit: LitStr = meta.value()?.parse()?;
                if lit.value().is_empty() {
                    return Err(meta.error("a tag must not be empty"));
                }
                tag = Some(lit);
                Ok(())
            } else {
                Err(meta.error("unknown shmq attribute; the one known is `tag = \"...\"`"))
            }
        })?;
    }
    Ok(tag)
}
