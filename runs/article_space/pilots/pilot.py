import sys, json, dataclasses, time
from mnist_fc.config import RunConfig, ModelConfig, DataConfig, TrainConfig
from mnist_fc.trainer import fit
lr=float(sys.argv[1]); n1=int(sys.argv[2]); n2=int(sys.argv[3]); ts=int(sys.argv[4]); ep=int(sys.argv[5]); norm=sys.argv[6]; std=float(sys.argv[7]); scaling=sys.argv[8] if len(sys.argv)>8 else "none"
cfg=RunConfig(model=ModelConfig(n_units_l1=n1,n_units_l2=n2,batchnorm=True,init_mean=0.0,init_std=std,init_scaling=scaling),
 data=DataConfig(normalization=norm,train_size=ts), train=TrainConfig(lr=lr,epochs=ep,eval_every=25,device="cpu"))
t=time.time(); r=fit(cfg).result
c=r.curves.to_dict()
print(json.dumps(dict(args=sys.argv[1:], s=round(time.time()-t,1), train_acc=r.train_accuracy, val=r.val_accuracy, valcurve=[round(v,4) for v in c.get('val_accuracy',[])][::2], trainloss=[round(v,4) for v in c['train_loss'][::25]])))
