(()=>{const d=document,p=parent!==window;let s=d.querySelector(".tk");
const h=()=>{p&&parent.postMessage({type:"ticker:height",height:Math.ceil(d.documentElement.getBoundingClientRect().height),title:d.title},"*")};
const r=()=>fetch(s.dataset.src,{cache:"no-cache"}).then(x=>x.ok?x.text():"").then(t=>{if(!t)return;
const n=new DOMParser().parseFromString(t,"text/html");n.querySelectorAll("[data-k]").forEach(e=>{
d.querySelectorAll('[data-k="'+e.dataset.k+'"]').forEach(o=>{if(o.innerHTML!==e.innerHTML)o.innerHTML=e.innerHTML;o.className=e.className})});
const c=d.querySelector(".tk-copy");c&&(c.innerHTML=d.querySelector(".tk-tape ol").innerHTML);h()}).catch(()=>{});
setInterval(r,1e3*(+s.dataset.refresh||60));window.ResizeObserver&&new ResizeObserver(h).observe(d.body);addEventListener("load",h);h()})();
